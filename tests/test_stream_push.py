"""The event streams as pages use them: the signed-in session instead of a token (from this site
only), a lesson-plan run's stream with Last-Event-ID replay, and the admin queue's one stream."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app.extensions import db
from app.models import RunEvent
from tests.helpers import create_path, create_workflow, start_build, wait_for_status
from tests.helpers.streams import EventReader
from tests.helpers.users import make_user
from tests.helpers.web import csrf_token
from tests.services import wait_until

PASSWORD = "correct horse battery staple"  # make_user's


def _signed_in(app: Flask, email: str = "designer@example.com") -> tuple[FlaskClient, dict[str, str]]:
    """A test client signed in through the sign-in form, and a token of the same user."""
    auth = make_user(app, email)
    client = app.test_client()
    response = client.post(
        "/sign-in", data={"email": email, "password": PASSWORD, "csrf_token": csrf_token(client)}
    )
    assert response.status_code == 302
    return client, auth


def _cancelled_build(client: FlaskClient, auth: dict[str, str]) -> str:
    """A final build (no worker ran it) with a few events in its log."""
    build_id = start_build(client, auth, create_path(client, auth, concepts=1))
    assert client.post(f"/api/jobs/{build_id}/cancel", headers=auth).status_code == 200
    return build_id


def _events(body: str) -> list[dict[str, Any]]:
    events = []
    for block in body.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in fields:
            events.append(
                {"id": int(fields["id"]), "event": fields["event"], "data": json.loads(fields["data"])}
            )
    return events


def test_a_signed_in_session_reads_a_build_stream_without_a_token(app):
    page, auth = _signed_in(app)
    build_id = _cancelled_build(page, auth)

    response = page.get(f"/api/jobs/{build_id}/stream", headers={"Sec-Fetch-Site": "same-origin"})

    assert response.status_code == 200 and response.mimetype == "text/event-stream"
    events = _events(response.get_data(as_text=True))
    assert events[-1]["event"] == "completed" and events[-1]["data"]["data"]["status"] == "cancelled"


def test_a_stream_without_a_session_or_token_is_a_401(app, client, auth):
    build_id = _cancelled_build(client, auth)
    response = client.get(f"/api/jobs/{build_id}/stream")
    assert response.status_code == 401 and response.get_json()["error"]["code"] == "unauthorized"


@pytest.mark.parametrize(
    "headers",
    [
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},  # another port of the same host: the cookie still rides along
        {"Origin": "http://localhost:1"},
        {"Sec-Fetch-Site": "same-origin", "Origin": "http://evil.example"},
    ],
)
def test_a_session_stream_asked_for_by_another_site_is_refused_with_403_and_no_cors(app, headers):
    page, auth = _signed_in(app)
    build_id = _cancelled_build(page, auth)

    response = page.get(f"/api/jobs/{build_id}/stream", headers=headers)

    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "cross_site"
    assert not any(name.startswith("Access-Control-") for name in response.headers.keys())


def test_a_same_origin_request_naming_its_own_origin_is_served(app):
    page, auth = _signed_in(app)
    build_id = _cancelled_build(page, auth)
    response = page.get(
        f"/api/jobs/{build_id}/stream",
        headers={"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"},
    )
    assert response.status_code == 200


def test_the_session_opens_only_the_streams_not_the_rest_of_the_api(app):
    page, auth = _signed_in(app)
    build_id = _cancelled_build(page, auth)
    assert page.get(f"/api/jobs/{build_id}").status_code == 401
    assert page.post(f"/api/jobs/{build_id}/retry").status_code == 401


def test_a_session_sees_only_its_own_streams(app):
    _, auth = _signed_in(app)
    stranger, _ = _signed_in(app, "stranger@example.com")
    owner = app.test_client()
    build_id = _cancelled_build(owner, auth)
    response = stranger.get(f"/api/jobs/{build_id}/stream")
    assert response.status_code == 404 and response.get_json()["error"]["code"] == "not_found"


@pytest.mark.slow
def test_a_run_stream_replays_progress_module_completed_and_completed_in_order(app, client, auth, workers):
    workers()
    workflow_id = create_workflow(client, auth, modules=2)
    assert client.post(f"/api/v3/workflow/{workflow_id}/step10", headers=auth).status_code == 202
    wait_for_status(client, auth, workflow_id, "complete")

    response = client.get(f"/api/v3/workflow/{workflow_id}/step10/stream", headers=auth)

    assert response.status_code == 200
    events = _events(response.get_data(as_text=True))
    assert [(e["event"], e["data"]["data"].get("moduleIndex")) for e in events] == [
        ("progress", 0),
        ("module_completed", 0),
        ("progress", 1),
        ("module_completed", 1),
        ("completed", None),
    ]
    assert events[-1]["data"]["data"] | {"error": None} == {
        "status": "complete",
        "error": None,
        "modulesGenerated": 2,
        "totalModules": 2,
    }
    with app.app_context():
        assert [e["id"] for e in events] == list(
            db.session.scalars(select(RunEvent.id).order_by(RunEvent.id))
        )

    middle = events[1]["id"]
    rest = client.get(
        f"/api/v3/workflow/{workflow_id}/step10/stream", headers={**auth, "Last-Event-ID": str(middle)}
    )
    assert [e["id"] for e in _events(rest.get_data(as_text=True))] == [e["id"] for e in events[2:]]
    done = client.get(
        f"/api/v3/workflow/{workflow_id}/step10/stream",
        headers={**auth, "Last-Event-ID": str(events[-1]["id"])},
    )
    assert done.status_code == 204


@pytest.mark.slow
def test_a_run_whose_module_fails_for_good_streams_its_errors_and_ends_failed(app, client, auth, workers):
    workers(GENERATOR_FAIL_ON="Module 2")
    workflow_id = create_workflow(client, auth, modules=2)
    assert client.post(f"/api/v3/workflow/{workflow_id}/step10", headers=auth).status_code == 202
    wait_for_status(client, auth, workflow_id, "failed")

    events = _events(
        client.get(f"/api/v3/workflow/{workflow_id}/step10/stream", headers=auth).get_data(as_text=True)
    )

    errors = [e["data"]["data"] for e in events if e["event"] == "error"]
    assert errors and all(error["moduleIndex"] == 1 for error in errors)
    assert [error["final"] for error in errors][-1] is True and not any(e["final"] for e in errors[:-1])
    assert events[-1]["event"] == "completed" and events[-1]["data"]["data"]["status"] == "failed"


def test_a_workflow_never_generated_has_no_run_to_stream(client, auth):
    workflow_id = create_workflow(client, auth, modules=1)
    assert client.get(f"/api/v3/workflow/{workflow_id}/step10/stream", headers=auth).status_code == 204


def test_the_admin_queue_stream_is_refused_to_a_non_admin(client, auth):
    response = client.get("/api/admin/queue/stream", headers=auth)
    assert response.status_code == 403 and response.get_json()["error"]["code"] == "forbidden"


@pytest.mark.slow
def test_the_admin_queue_stream_says_changed_when_any_build_moves(app, client, auth, procfile_web):
    base = procfile_web()
    admin = make_user(app, "admin@example.com", admin=True)
    build_id = start_build(client, auth, create_path(client, auth, concepts=1))
    response = requests.get(f"{base}/api/admin/queue/stream", headers=admin, stream=True, timeout=10)
    assert response.status_code == 200
    reader = EventReader(response)
    wait_until(lambda: reader.retry is not None, timeout=10, message="the stream to start")
    # The process's doorbell subscribes with its first stream and then rings once (whatever was
    # published before the subscription is read again): at most one `changed` for that.
    time.sleep(1.0)
    assert [event["event"] for event in reader.events] in ([], ["changed"]), reader.events
    seen = len(reader.events)
    time.sleep(0.5)
    assert len(reader.events) == seen, "nothing moved, so nothing more is said"

    assert client.post(f"/api/jobs/{build_id}/pause", headers=auth).status_code == 200

    wait_until(lambda: len(reader.events) > seen, timeout=10, message="a `changed` event")
    assert reader.events[seen]["event"] == "changed"
    reader.close()
