"""rq-dashboard mounted at /admin/rq: state changes only by same-origin POST, and unknown ids,
queues and page sizes answered with a 4xx instead of a 500."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest
from flask import Flask
from flask.testing import FlaskClient
from redis import Redis
from rq import Queue, SimpleWorker
from rq.registry import FailedJobRegistry

from app.admin.rq import STATE_CHANGING
from tests.helpers.users import make_user
from tests.helpers.web import PASSWORD, csrf_token, sign_in

QUEUE = "lesson-plans"
SAME_ORIGIN = {"Origin": "http://localhost"}


@pytest.fixture
def admin(app: Flask, client: FlaskClient) -> FlaskClient:
    sign_in(app, client, "root@example.com", admin=True)
    return client


@pytest.fixture
def failed_jobs(redis_server: Any) -> list[str]:
    """Three jobs in the failed registry and one waiting in the queue, failed by a real worker."""
    connection = redis_server.client()
    queue = Queue(QUEUE, connection=connection)
    failing = [queue.enqueue("builtins.int", "not a number") for _ in range(3)]
    SimpleWorker([queue], connection=connection).work(burst=True)
    queue.enqueue("builtins.print", "waiting")
    assert sorted(FailedJobRegistry(QUEUE, connection=connection).get_job_ids()) == sorted(
        job.id for job in failing
    )
    return [job.id for job in failing]


def _state_changing_urls(job_id: str) -> list[str]:
    return [
        f"/admin/rq/job/{job_id}/delete",
        f"/admin/rq/job/{job_id}/requeue",
        f"/admin/rq/requeue/{QUEUE}",
        f"/admin/rq/queue/{QUEUE}/failed/empty",
        f"/admin/rq/queue/{QUEUE}/queued/empty",
        f"/admin/rq/queue/{QUEUE}/compact",
    ]


def _snapshot(connection: Redis) -> dict[bytes, bytes | None]:
    return {key: connection.dump(key) for key in connection.scan_iter("rq:*")}


def test_every_post_route_of_the_dashboard_is_guarded_as_state_changing(app):
    posting = {
        rule.endpoint
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith("rq_dashboard.") and "POST" in rule.methods
    }
    assert posting == STATE_CHANGING


def test_a_get_to_any_state_changing_route_is_405_and_changes_nothing(admin, redis_server, failed_jobs):
    connection = redis_server.client()
    before = _snapshot(connection)

    for url in _state_changing_urls(failed_jobs[0]):
        response = admin.get(url, headers=SAME_ORIGIN)
        assert response.status_code == 405, url
        assert response.headers["Allow"].startswith("POST") or "POST" in response.headers["Allow"], url

    assert _snapshot(connection) == before
    assert len(FailedJobRegistry(QUEUE, connection=connection)) == 3


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "https://localhost"},  # the right host with the wrong scheme
        {"Referer": "https://localhost/admin/rq/"},
        {"Referer": "http://evil.example/admin/rq/"},
        {"Origin": "null"},
        {},
    ],
)
def test_a_post_not_from_this_origin_is_403_and_changes_nothing(admin, redis_server, failed_jobs, headers):
    connection = redis_server.client()
    before = _snapshot(connection)

    for url in _state_changing_urls(failed_jobs[0]):
        assert admin.post(url, headers=headers).status_code == 403, url

    assert _snapshot(connection) == before


def test_a_same_origin_post_requeues_the_failed_jobs(admin, redis_server, failed_jobs):
    connection = redis_server.client()

    response = admin.post(f"/admin/rq/requeue/{QUEUE}", headers={"Referer": "http://localhost/admin/rq/"})

    assert response.status_code == 200 and response.get_json() == {"status": "OK", "count": 3}
    assert len(FailedJobRegistry(QUEUE, connection=connection)) == 0
    assert set(failed_jobs) <= set(Queue(QUEUE, connection=connection).job_ids)


@pytest.mark.parametrize(
    ("method", "url", "status"),
    [
        ("post", "/admin/rq/job/nonexistent-job/requeue", 404),
        ("get", "/admin/rq/0/data/job/nonexistent-job.json", 404),
        ("get", "/admin/rq/0/view/job/nonexistent-job", 404),
        ("get", "/admin/rq/1/view/job/%C2%B2", 404),  # '²': RQ refuses such an id with a ValueError
        ("get", "/admin/rq/0/data/job/a%20b.json", 404),
        ("post", "/admin/rq/job/%C2%B2/requeue", 404),
        ("get", f"/admin/rq/0/data/jobs/{QUEUE}/queued/0/asc/1.json", 400),
        ("get", f"/admin/rq/0/data/jobs/{QUEUE}/queued/ten/asc/1.json", 400),
        ("get", f"/admin/rq/0/data/jobs/{QUEUE}/queued/10/asc/0.json", 400),
        ("get", f"/admin/rq/0/data/jobs/{QUEUE}/queued/10/asc/%C2%B2.json", 400),
        ("get", f"/admin/rq/0/data/jobs/{QUEUE}/queued/10/asc/9223372036854775808.json", 400),
        ("get", f"/admin/rq/0/data/jobs/{QUEUE}/queued/10/asc/{'9' * 5000}.json", 400),
        ("get", f"/admin/rq/0/data/jobs/{QUEUE}/queued/10/sideways/1.json", 400),
        ("get", f"/admin/rq/0/data/jobs/{QUEUE}/bogus/10/asc/1.json", 404),
        ("get", f"/admin/rq/0/view/jobs/{QUEUE}/bogus/10/asc/1", 404),
        ("get", f"/admin/rq/0/view/jobs/{QUEUE}/queued/0/asc/1", 400),
        ("post", "/admin/rq/queue/no-such-queue/compact", 404),
    ],
)
def test_unknown_ids_queues_and_pages_are_4xx_not_500(admin, redis_server, method, url, status):
    Queue(QUEUE, connection=redis_server.client()).enqueue("builtins.print", "known queue")

    response = getattr(admin, method)(url, headers=SAME_ORIGIN)

    assert response.status_code == status, (url, response.get_data(as_text=True)[:300])


def test_a_requeue_of_a_job_that_has_not_failed_is_409(admin, redis_server):
    job = Queue(QUEUE, connection=redis_server.client()).enqueue("builtins.print", "waiting")

    response = admin.post(f"/admin/rq/job/{job.id}/requeue", headers=SAME_ORIGIN)

    assert response.status_code == 409


def test_listing_and_compacting_a_known_queue_still_work(admin, redis_server, failed_jobs):
    listing = admin.get(f"/admin/rq/0/data/jobs/{QUEUE}/failed/2/asc/1.json")
    compact = admin.post(f"/admin/rq/queue/{QUEUE}/compact", headers=SAME_ORIGIN)

    assert listing.status_code == 200 and len(listing.get_json()["jobs"]) == 2
    assert listing.get_json()["pagination"]["num_pages"] == 2
    assert compact.status_code == 200 and compact.get_json() == {"status": "OK"}


def test_signing_in_from_the_dashboard_returns_to_the_page_asked_for_its_address_encoded_whole(app, client):
    asked = "/admin/rq/?a=1&b=2"

    response = client.get(asked)

    location = response.headers["Location"]
    path, _, query = location.partition("?")
    assert response.status_code == 302 and path == "/sign-in"
    assert query == "next=%2Fadmin%2Frq%2F%3Fa%3D1%26b%3D2", "no bare / ? & = in the value"
    make_user(app, "root@example.com", admin=True)
    signed_in = client.post(
        location, data={"email": "root@example.com", "password": PASSWORD, "csrf_token": csrf_token(client)}
    )
    assert signed_in.headers["Location"] == "/admin/rq/?a=1&b=2"


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example/",
        "/\\evil.example/",
        "/\\/evil.example",
        "/\t/evil.example",
        "https://evil.example/",
        "javascript:alert(1)",
        "evil.example",
    ],
)
def test_sign_in_sends_nowhere_but_a_local_path(app, client, target):
    make_user(app, "ada@example.com")

    response = client.post(
        "/sign-in?" + urlencode({"next": target}),
        data={"email": "ada@example.com", "password": PASSWORD, "csrf_token": csrf_token(client)},
    )

    assert response.status_code == 302 and response.headers["Location"] == "/"
