"""The learning-path and build API without workers: shapes, ownership, and bad input."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import Build, BuildStep, LearningPath
from tests.helpers import create_path, start_build
from tests.helpers.users import make_user

VALID = {"name": "Statistics for Nurses", "topic": "statistics"}


def _counts(app) -> tuple[int, int, int]:  # type: ignore[no-untyped-def]
    with app.app_context():
        return tuple(
            db.session.scalar(select(func.count()).select_from(model))
            for model in (LearningPath, Build, BuildStep)
        )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({"topic": "x"}, "name", id="missing name"),
        pytest.param({**VALID, "name": " "}, "name", id="blank name"),
        pytest.param({**VALID, "conceptCount": 0}, "conceptCount", id="zero concepts"),
        pytest.param({**VALID, "conceptCount": 1001}, "conceptCount", id="too many concepts"),
        pytest.param({**VALID, "conceptCount": "3"}, "conceptCount", id="count as a string"),
        pytest.param({**VALID, "conceptCount": 2.5}, "conceptCount", id="fractional count"),
        pytest.param({**VALID, "description": "x" * 2001}, "description", id="description too long"),
        pytest.param({**VALID, "status": "completed"}, "status", id="unknown field"),
    ],
)
def test_an_invalid_path_is_a_422_naming_the_field_and_writes_nothing(app, client, auth, body, field):
    before = _counts(app)

    response = client.post("/api/learning-paths", json=body, headers=auth)

    assert response.status_code == 422
    assert field in [d["field"] for d in response.get_json()["error"]["details"]]
    assert _counts(app) == before


def test_a_new_path_has_no_tree_and_no_build(client, auth):
    path_id = create_path(client, auth, concepts=4, description="For ward nurses")

    path = client.get(f"/api/learning-paths/{path_id}", headers=auth).get_json()

    assert path["conceptCount"] == 4 and path["description"] == "For ward nurses"
    assert path["concepts"] == [] and path["latestBuild"] is None


def test_starting_a_build_queues_its_orchestrator_and_a_second_start_is_a_409(
    app, client, auth, redis_server
):
    path_id = create_path(client, auth)

    build_id = start_build(client, auth, path_id)
    second = client.post(f"/api/jobs/build/{path_id}", headers=auth)

    assert second.status_code == 409 and second.get_json()["error"]["details"] == {"jobId": build_id}
    build = client.get(f"/api/jobs/{build_id}", headers=auth).get_json()
    assert build["status"] == "processing" and build["currentStage"] == "concepts"
    assert build["progressPercent"] == 0 and build["bullJobId"].startswith("step-")
    assert redis_server.client().llen("rq:queue:build-path") == 1
    steps = client.get(f"/api/jobs/{build_id}/steps", headers=auth).get_json()["data"]
    assert [(s["type"], s["status"]) for s in steps] == [("concepts", "queued")]


def test_other_users_paths_builds_and_dead_letters_are_404s_but_admins_see_them(app, client, auth):
    path_id = create_path(client, auth)
    build_id = start_build(client, auth, path_id)
    stranger = make_user(app, "stranger@example.com")
    admin = make_user(app, "admin@example.com", admin=True)
    before = _counts(app)

    for method, url in [
        ("get", f"/api/learning-paths/{path_id}"),
        ("post", f"/api/jobs/build/{path_id}"),
        ("get", f"/api/jobs/{build_id}"),
        ("get", f"/api/jobs/{build_id}/steps"),
        ("get", f"/api/jobs/{build_id}/stream"),
        ("post", f"/api/jobs/{build_id}/cancel"),
        ("post", f"/api/jobs/{build_id}/retry"),
        ("get", f"/api/jobs/path/{path_id}"),
    ]:
        response = getattr(client, method)(url, headers=stranger)
        assert response.status_code == 404, url
        assert response.get_json()["error"]["code"] == "not_found"
    assert client.get("/api/jobs", headers=stranger).get_json() == []
    assert [b["id"] for b in client.get("/api/jobs", headers=admin).get_json()] == [build_id]
    assert client.get(f"/api/jobs/{build_id}", headers=admin).status_code == 200
    assert _counts(app) == before


@pytest.mark.parametrize(
    "query", ["status=bogus", "limit=0", "limit=201", "limit=ten"], ids=["status", "zero", "over", "word"]
)
def test_bad_list_parameters_are_422s(client, auth, query):
    response = client.get(f"/api/jobs?{query}", headers=auth)

    assert response.status_code == 422 and response.get_json()["error"]["code"] == "validation_error"


def test_the_list_filters_by_status(client, auth):
    build_id = start_build(client, auth, create_path(client, auth))

    assert [b["id"] for b in client.get("/api/jobs?status=processing", headers=auth).get_json()] == [build_id]
    assert client.get("/api/jobs?status=completed", headers=auth).get_json() == []


def test_transitions_that_the_status_does_not_allow_are_400s(app, client, auth):
    build_id = start_build(client, auth, create_path(client, auth))

    for action in ("resume", "retry"):
        response = client.post(f"/api/jobs/{build_id}/{action}", headers=auth)
        assert response.status_code == 400 and response.get_json()["error"]["code"] == "invalid_state"
    assert client.post(f"/api/jobs/{build_id}/pause", headers=auth).status_code == 200
    assert client.post(f"/api/jobs/{build_id}/pause", headers=auth).status_code == 400
    assert client.post(f"/api/jobs/{build_id}/cancel", headers=auth).status_code == 200
    assert client.get(f"/api/jobs/{build_id}", headers=auth).get_json()["status"] == "cancelled"


def test_unknown_ids_are_404s(client, auth):
    for method, url in [
        ("get", "/api/jobs/nope"),
        ("post", "/api/jobs/build/nope"),
        ("get", "/api/learning-paths/nope"),
        ("post", "/api/dead-letter/999/retry"),
    ]:
        response = getattr(client, method)(url, headers=auth)
        assert response.status_code == 404 and response.get_json()["success"] is False
