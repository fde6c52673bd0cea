"""The workflow API: shapes, auth, ownership, and bad input that changes nothing."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from sqlalchemy import func, select

from app.extensions import db
from app.jobs.queues import LESSON_PLANS_QUEUE
from app.models import LessonPlanRun, Module, Workflow
from tests.helpers import create_workflow
from tests.helpers.users import make_user

VALID = {"title": "Intro to SQL", "topic": "Databases", "modules": [{"title": "Selecting rows"}]}


def _counts(app) -> tuple[int, int, int]:  # type: ignore[no-untyped-def]
    with app.app_context():
        return tuple(
            db.session.scalar(select(func.count()).select_from(model))
            for model in (Workflow, Module, LessonPlanRun)
        )


def _error(response, status: int, code: str) -> dict:  # type: ignore[no-untyped-def,type-arg]
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert body["success"] is False and body["error"]["code"] == code
    assert body["error"]["message"]
    return body["error"]


def test_create_returns_the_workflow_with_its_id_and_modules(client, auth):
    response = client.post("/api/v3/workflows", json=VALID, headers=auth)

    assert response.status_code == 201
    data = response.get_json()["data"]
    assert data["id"] and data["title"] == "Intro to SQL" and data["audience"] is None
    assert data["modules"] == [
        {"index": 0, "title": "Selecting rows", "contactHours": 3.0, "status": "pending", "progress": 0}
    ]
    fetched = client.get(f"/api/v3/workflow/{data['id']}", headers=auth).get_json()["data"]
    assert fetched == data


BAD_BODIES = [
    pytest.param({**VALID, "title": ""}, "title", id="empty title"),
    pytest.param({**VALID, "title": "   "}, "title", id="blank title"),
    pytest.param({**VALID, "title": 5}, "title", id="title not a string"),
    pytest.param({**VALID, "title": "x" * 201}, "title", id="title too long"),
    pytest.param({k: v for k, v in VALID.items() if k != "topic"}, "topic", id="missing topic"),
    pytest.param({**VALID, "modules": []}, "modules", id="no modules"),
    pytest.param({**VALID, "modules": [{"title": "m"}] * 51}, "modules", id="51 modules"),
    pytest.param({**VALID, "modules": "three"}, "modules", id="modules not a list"),
    pytest.param({**VALID, "modules": [{}]}, "modules.0.title", id="module without title"),
    pytest.param(
        {**VALID, "modules": [{"title": "m", "contactHours": "3"}]},
        "modules.0.contactHours",
        id="hours as a string",
    ),
    pytest.param(
        {**VALID, "modules": [{"title": "m", "contactHours": True}]},
        "modules.0.contactHours",
        id="hours as a boolean",
    ),
    pytest.param(
        {**VALID, "modules": [{"title": "m", "contactHours": 0}]},
        "modules.0.contactHours",
        id="zero hours",
    ),
    pytest.param(
        {**VALID, "modules": [{"title": "m", "contactHours": -2}]},
        "modules.0.contactHours",
        id="negative hours",
    ),
    pytest.param({**VALID, "owner": "someone-else"}, "owner", id="unknown field"),
]


@pytest.mark.parametrize(("body", "field"), BAD_BODIES)
def test_invalid_workflow_is_refused_with_422_naming_the_field(app, client, auth, body, field):
    before = _counts(app)

    error = _error(client.post("/api/v3/workflows", json=body, headers=auth), 422, "validation_error")

    assert field in [detail["field"] for detail in error["details"]]
    assert _counts(app) == before


@pytest.mark.parametrize(
    "raw",
    ["{not json", "", "[1, 2]", '"a string"', "null"],
    ids=["malformed", "empty", "array", "string", "null"],
)
def test_a_body_that_is_not_a_json_object_is_a_400(app, client, auth, raw):
    before = _counts(app)

    response = client.post(
        "/api/v3/workflows", data=raw, headers={**auth, "Content-Type": "application/json"}
    )

    _error(response, 400, "invalid_json")
    assert _counts(app) == before


def test_an_oversized_body_is_a_413(app, client, auth):
    before = _counts(app)
    body = json.dumps({**VALID, "topic": "x" * 300_000})

    response = client.post(
        "/api/v3/workflows", data=body, headers={**auth, "Content-Type": "application/json"}
    )

    _error(response, 413, "request_entity_too_large")
    assert _counts(app) == before


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer "}, {"Authorization": "Bearer cb_wrong"}, {"Authorization": "Basic abc"}],
    ids=["none", "empty", "unknown token", "wrong scheme"],
)
def test_every_route_needs_a_valid_bearer_token(app, client, headers):
    before = _counts(app)

    _error(client.post("/api/v3/workflows", json=VALID, headers=headers), 401, "unauthorized")
    _error(client.get("/api/v3/workflow/abc/step10/status", headers=headers), 401, "unauthorized")
    _error(client.post("/api/v3/workflow/abc/step10", headers=headers), 401, "unauthorized")
    assert _counts(app) == before


def test_another_users_workflow_is_a_404_but_an_admin_sees_it(app, client, auth):
    workflow_id = create_workflow(client, auth)
    stranger = make_user(app, "stranger@example.com")
    admin = make_user(app, "admin@example.com", admin=True)

    for url in ("", "/step10", "/step10/status"):
        _error(client.get(f"/api/v3/workflow/{workflow_id}{url}", headers=stranger), 404, "not_found")
    _error(client.post(f"/api/v3/workflow/{workflow_id}/step10", headers=stranger), 404, "not_found")
    assert client.get(f"/api/v3/workflow/{workflow_id}", headers=admin).status_code == 200
    assert _counts(app)[2] == 0, "the stranger's start must not have opened a run"


def test_unknown_ids_routes_and_methods_answer_json(client, auth):
    _error(client.get("/api/v3/workflow/nope/step10/status", headers=auth), 404, "not_found")
    _error(client.get("/api/v3/nothing-here", headers=auth), 404, "not_found")
    _error(client.delete("/api/v3/workflows", headers=auth), 405, "method_not_allowed")


def test_start_body_has_exactly_the_seed_fields(client, auth):
    workflow_id = create_workflow(client, auth, modules=8)

    body = client.post(f"/api/v3/workflow/{workflow_id}/step10", headers=auth).get_json()

    assert set(body) == {"success", "data", "message"}
    assert body["data"] == {
        "jobsQueued": 1,
        "modulesGenerated": 0,
        "totalModules": 8,
        "estimatedTimeMinutes": 16,
    }


def test_starting_twice_queues_one_job(app, client, auth, redis_server):
    workflow_id = create_workflow(client, auth)

    first = client.post(f"/api/v3/workflow/{workflow_id}/step10", headers=auth).get_json()
    second = client.post(f"/api/v3/workflow/{workflow_id}/step10", headers=auth).get_json()

    assert (first["data"]["jobsQueued"], second["data"]["jobsQueued"]) == (1, 0)
    assert "already in progress" in second["message"]
    assert redis_server.client().llen(f"rq:queue:{LESSON_PLANS_QUEUE}") == 1


@pytest.mark.slow
def test_ten_concurrent_starts_through_gunicorn_queue_one_job(app, client, auth, web, redis_server):
    workflow_id = create_workflow(client, auth, modules=5)
    url = f"{web}/api/v3/workflow/{workflow_id}/step10"

    with ThreadPoolExecutor(max_workers=10) as pool:
        responses = list(pool.map(lambda _: requests.post(url, headers=auth, timeout=30), range(10)))

    assert [r.status_code for r in responses] == [202] * 10
    assert sum(r.json()["data"]["jobsQueued"] for r in responses) == 1
    assert redis_server.client().llen(f"rq:queue:{LESSON_PLANS_QUEUE}") == 1
    assert _counts(app)[2] == 1, "exactly one run"


def test_start_while_redis_is_down_is_a_503_and_the_work_is_queued_when_it_returns(
    app, client, auth, redis_server
):
    from app.jobs.recovery import reconcile_all

    workflow_id = create_workflow(client, auth)
    redis_server.stop()
    try:
        _error(client.post(f"/api/v3/workflow/{workflow_id}/step10", headers=auth), 503, "queue_unavailable")
    finally:
        redis_server.start()

    with app.app_context():
        assert reconcile_all() == 1
        assert reconcile_all() == 0, "reconciling twice queues nothing more"
    assert redis_server.client().llen(f"rq:queue:{LESSON_PLANS_QUEUE}") == 1
