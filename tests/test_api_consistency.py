"""The API, consistent: list routes, one naming style, one timestamp format, honest numbers,
honest answers to starts that have nothing to do, and id fields that hold what they say."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select
from wtforms.validators import ValidationError

from app.database import isoformat, utcnow
from app.extensions import db
from app.forms import parse_module_lines
from app.models import Build, Concept, LearningPath, LessonPlanRun, Module, Workflow
from tests.helpers import (
    create_path,
    create_workflow,
    start_build,
    wait_for_build,
    wait_for_status,
)
from tests.helpers.queries import QueryCounter
from tests.helpers.users import make_user

TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
CAMEL_CASE = re.compile(r"^[a-z][a-zA-Z0-9]*$")
# Maps whose keys are data (error categories), not field names.
DATA_KEYED = {"errorCategories"}


def _walk(value: Any, path: str = "") -> Iterator[tuple[str, str, Any]]:
    """Every (path, key, value) of a JSON document."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield path, key, item
            if key not in DATA_KEYED:
                yield from _walk(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _walk(item, f"{path}[{index}]")


def assert_consistent(document: Any) -> None:
    """camelCase keys everywhere; every timestamp ISO 8601 UTC with milliseconds and Z."""
    for path, key, value in _walk(document):
        assert CAMEL_CASE.match(key), f"{path}.{key} is not camelCase"
        if key.endswith("At") or key == "timestamp":
            assert value is None or TIMESTAMP.match(value), f"{path}.{key} = {value!r}"


def _counts(app: Flask) -> tuple[int, ...]:
    with app.app_context():
        return tuple(
            db.session.scalar(select(func.count()).select_from(model))
            for model in (Workflow, Module, LessonPlanRun, LearningPath, Build)
        )


def _get(client, url: str, headers: dict[str, str], status: int = 200) -> Any:  # type: ignore[no-untyped-def]
    response = client.get(url, headers=headers)
    assert response.status_code == status, response.get_data(as_text=True)
    return response.get_json()


def _set_module_status(app: Flask, workflow_id: str, *statuses: str) -> None:
    with app.app_context():
        modules = db.session.scalars(
            select(Module).where(Module.workflow_id == workflow_id).order_by(Module.position)
        ).all()
        for module, status in zip(modules, statuses, strict=True):
            module.status = status
        db.session.commit()


# --- GET /api/v3/workflows ------------------------------------------------------------------


def test_the_workflow_list_holds_the_callers_own_newest_first_and_an_admin_sees_all(app, client, auth):
    mine = [create_workflow(client, auth, modules=2, title=f"Mine {i}") for i in range(3)]
    other = make_user(app, "other@example.com")
    theirs = create_workflow(client, other, title="Theirs")
    admin = make_user(app, "admin@example.com", admin=True)

    body = _get(client, "/api/v3/workflows", auth)

    assert body["success"] is True
    assert [w["id"] for w in body["data"]] == mine[::-1]
    assert body["data"][0] == {
        "id": mine[2],
        "title": "Mine 2",
        "topic": "Data literacy",
        "audience": "Ward nurses",
        "createdAt": body["data"][0]["createdAt"],
        "status": "pending",
        "modulesGenerated": 0,
        "totalModules": 2,
    }
    assert body["pagination"] == {"page": 1, "limit": 20, "total": 3, "totalPages": 1}
    everyone = _get(client, "/api/v3/workflows", admin)
    assert [w["id"] for w in everyone["data"]] == [theirs, *mine[::-1]]


def test_the_workflow_list_pages_and_filters_by_the_status_the_workflow_itself_shows(app, client, auth):
    ids = {status: create_workflow(client, auth, modules=2, title=status) for status in ("a", "b", "c", "d")}
    _set_module_status(app, ids["b"], "completed", "running")
    _set_module_status(app, ids["c"], "completed", "completed")
    _set_module_status(app, ids["d"], "completed", "failed")

    for status in ("pending", "in_progress", "complete", "failed"):
        listed = _get(client, f"/api/v3/workflows?status={status}", auth)["data"]
        assert len(listed) == 1, status
        shown = _get(client, f"/api/v3/workflow/{listed[0]['id']}/step10/status", auth)["data"]
        assert listed[0]["status"] == shown["status"] == status
        assert listed[0]["modulesGenerated"] == shown["modulesGenerated"]

    first = _get(client, "/api/v3/workflows?page=1&limit=3", auth)
    second = _get(client, "/api/v3/workflows?page=2&limit=3", auth)
    beyond = _get(client, "/api/v3/workflows?page=9&limit=3", auth)
    assert [w["id"] for w in first["data"] + second["data"]] == [ids[k] for k in "dcba"]
    assert second["pagination"] == {"page": 2, "limit": 3, "total": 4, "totalPages": 2}
    assert beyond["data"] == [] and beyond["pagination"]["total"] == 4


# --- GET /api/learning-paths -----------------------------------------------------------------


def test_the_path_list_holds_the_callers_own_with_their_latest_build_and_filters_by_status(app, client, auth):
    never = create_path(client, auth, name="Never built")
    built = create_path(client, auth, name="Built")
    build_id = start_build(client, auth, built)
    other = make_user(app, "other@example.com")
    create_path(client, other, name="Theirs")
    admin = make_user(app, "admin@example.com", admin=True)

    body = _get(client, "/api/learning-paths", auth)

    assert [p["id"] for p in body["data"]] == [built, never]
    assert body["data"][1]["status"] == "new" and body["data"][1]["latestBuild"] is None
    latest = body["data"][0]["latestBuild"]
    assert body["data"][0]["status"] == "processing"
    assert {k: latest[k] for k in ("id", "status", "progressPercent")} == {
        "id": build_id,
        "status": "processing",
        "progressPercent": 0,
    }
    assert body["pagination"] == {"page": 1, "limit": 20, "total": 2, "totalPages": 1}
    assert [p["id"] for p in _get(client, "/api/learning-paths?status=new", auth)["data"]] == [never]
    assert [p["id"] for p in _get(client, "/api/learning-paths?status=processing", auth)["data"]] == [built]
    assert _get(client, "/api/learning-paths?status=completed", auth)["data"] == []
    assert len(_get(client, "/api/learning-paths", admin)["data"]) == 3


def test_the_path_list_shows_the_newest_build_of_each_path(app, client, auth):
    path_id = create_path(client, auth)
    first = start_build(client, auth, path_id)
    assert client.post(f"/api/jobs/{first}/cancel", headers=auth).status_code == 200
    second = client.post(f"/api/jobs/{first}/retry", headers=auth).get_json()["jobId"]

    listed = _get(client, "/api/learning-paths", auth)["data"]

    assert [p["latestBuild"]["id"] for p in listed] == [second]
    assert [p["id"] for p in _get(client, "/api/learning-paths?status=cancelled", auth)["data"]] == []


@pytest.mark.parametrize("route", ["/api/v3/workflows", "/api/learning-paths"])
@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("page=0", "page: must be between 1 and 100000"),
        ("page=abc", "page: must be a whole number"),
        ("limit=0", "limit: must be between 1 and 100"),
        ("limit=101", "limit: must be between 1 and 100"),
        ("limit=1.5", "limit: must be a whole number"),
        ("status=bogus", "status: must be one of"),
    ],
)
def test_bad_list_parameters_are_a_422_that_says_what_is_allowed(client, auth, route, query, message):
    response = client.get(f"{route}?{query}", headers=auth)

    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "validation_error" and error["message"].startswith(message)


@pytest.mark.parametrize("route", ["/api/v3/workflows", "/api/learning-paths"])
def test_a_list_costs_the_same_number_of_queries_for_3_rows_and_for_30(app, client, auth, route):
    app.config["MAX_PENDING_BUILDS_PER_USER"] = 30  # one user builds 30 paths here (tests/test_quotas.py)

    def make(count: int) -> None:
        for i in range(count):
            if route == "/api/learning-paths":
                start_build(client, auth, create_path(client, auth, name=f"Path {i}"))
            else:
                create_workflow(client, auth, modules=3, title=f"Workflow {i}")

    def queries() -> int:
        with QueryCounter(app) as counter:
            _get(client, f"{route}?limit=100", auth)
        return counter.count

    make(3)
    with_3 = queries()
    make(27)
    with_30 = queries()

    assert len(_get(client, f"{route}?limit=100", auth)["data"]) == 30
    assert with_30 == with_3 <= 6


# --- numbers that are not numbers, and contact hours that make no lesson ---------------------


@pytest.mark.parametrize("raw", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_nan_and_infinity_are_refused_as_not_finite_and_write_nothing(app, client, auth, raw):
    before = _counts(app)
    body = '{"title": "T", "topic": "t", "modules": [{"title": "m", "contactHours": HOURS}]}'
    body = body.replace("HOURS", raw)

    response = client.post(
        "/api/v3/workflows", data=body, headers={**auth, "Content-Type": "application/json"}
    )

    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["message"] == "modules.0.contactHours: must be a finite number"
    assert error["details"] == [{"field": "modules.0.contactHours", "message": "must be a finite number"}]
    assert _counts(app) == before


@pytest.mark.parametrize("hours", [0.0001, 0.2, 200.5, 1000])
def test_contact_hours_outside_a_quarter_hour_to_200_hours_are_refused_with_the_bounds(
    app, client, auth, hours
):
    before = _counts(app)
    body = {"title": "T", "topic": "t", "modules": [{"title": "m", "contactHours": hours}]}

    response = client.post("/api/v3/workflows", json=body, headers=auth)

    assert response.status_code == 422
    assert response.get_json()["error"]["message"] == (
        "modules.0.contactHours: must be between 0.25 and 200 hours (at least 15 minutes)"
    )
    assert _counts(app) == before


@pytest.mark.parametrize("hours", [0.25, 200])
def test_contact_hours_at_the_bounds_are_accepted(client, auth, hours):
    body = {"title": "T", "topic": "t", "modules": [{"title": "m", "contactHours": hours}]}

    response = client.post("/api/v3/workflows", json=body, headers=auth)

    assert response.status_code == 201
    assert response.get_json()["data"]["modules"][0]["contactHours"] == hours


@pytest.mark.parametrize("hours", ["0.1", "200.5", "nan", "inf", "-inf"])
def test_the_page_form_refuses_the_same_contact_hours(hours):
    with pytest.raises(ValidationError, match="between 0.25 and 200"):
        parse_module_lines(f"Reading charts | {hours}")


def test_the_page_form_accepts_a_quarter_hour():
    assert parse_module_lines("Reading charts | 0.25") == [("Reading charts", 0.25)]


# --- one timestamp format ----------------------------------------------------------------------


def test_the_timestamp_helper_writes_utc_with_milliseconds_and_z():
    naive = datetime(2026, 11, 25, 13, 4, 5, 123456)
    aware = datetime(2026, 11, 25, 14, 4, 5, 123456, tzinfo=timezone(timedelta(hours=1)))

    assert isoformat(naive) == "2026-11-25T13:04:05.123Z"
    assert isoformat(aware) == isoformat(naive.replace(tzinfo=UTC)) == "2026-11-25T13:04:05.123Z"
    assert isoformat(None) is None


def test_a_workflows_created_at_has_milliseconds_like_every_other_timestamp(client, auth):
    workflow_id = create_workflow(client, auth)

    data = _get(client, f"/api/v3/workflow/{workflow_id}", auth)["data"]

    assert TIMESTAMP.match(data["createdAt"]), data["createdAt"]


# --- starts with nothing to do -------------------------------------------------------------------


@pytest.mark.slow
def test_step10_on_a_complete_workflow_is_a_200_that_says_so_and_fresh_regenerates(
    app, client, auth, workers, redis_server
):
    workflow_id = create_workflow(client, auth, modules=2)
    workers()
    assert client.post(f"/api/v3/workflow/{workflow_id}/step10", headers=auth).status_code == 202
    wait_for_status(client, auth, workflow_id, "complete")

    again = client.post(f"/api/v3/workflow/{workflow_id}/step10", headers=auth)

    assert again.status_code == 200
    assert again.get_json() == {
        "success": True,
        "data": {"jobsQueued": 0, "modulesGenerated": 2, "totalModules": 2, "estimatedTimeMinutes": 0},
        "message": 'All modules already have lesson plans; send {"fresh": true} to regenerate them.',
    }
    fresh = client.post(f"/api/v3/workflow/{workflow_id}/step10", headers=auth, json={"fresh": True})
    assert fresh.status_code == 202 and fresh.get_json()["data"]["jobsQueued"] == 1


@pytest.mark.slow
def test_starting_a_build_of_a_complete_tree_is_a_200_that_creates_no_build(app, client, auth, workers):
    path_id = create_path(client, auth, concepts=2)
    workers()
    wait_for_build(client, auth, start_build(client, auth, path_id))
    builds_before = _counts(app)[4]

    again = client.post(f"/api/jobs/build/{path_id}", headers=auth)

    assert again.status_code == 200
    assert again.get_json() == {
        "alreadyComplete": True,
        "message": "The path's tree is already complete: nothing to build. "
        'Send {"fresh": true} to regenerate it.',
    }
    assert _counts(app)[4] == builds_before
    fresh = client.post(f"/api/jobs/build/{path_id}", headers=auth, json={"fresh": True})
    assert fresh.status_code == 202
    assert _counts(app)[4] == builds_before + 1


def test_a_tree_with_a_concept_not_yet_decomposed_still_starts_a_build(app, client, auth):
    path_id = create_path(client, auth)
    with app.app_context():
        path = db.session.get(LearningPath, path_id)
        path.concepts_generated_at = utcnow()
        db.session.add(Concept(path_id=path_id, position=0, name="Averages", decomposed_at=None))
        db.session.commit()

    response = client.post(f"/api/jobs/build/{path_id}", headers=auth)

    assert response.status_code == 202 and response.get_json()["jobId"]


# --- every id field holds what its name says -----------------------------------------------------


def test_each_step_names_its_own_rq_job_and_the_build_names_its_orchestrators(app, client, auth):
    build_id = start_build(client, auth, create_path(client, auth))

    build = _get(client, f"/api/jobs/{build_id}", auth)
    steps = _get(client, f"/api/jobs/{build_id}/steps", auth)["data"]

    assert [s["type"] for s in steps] == ["concepts"]
    assert steps[0]["bullJobId"] == f"step-{steps[0]['id']}" == build["bullJobId"]
    assert "jobId" not in steps[0], "a step has no build-valued jobId; buildJobId names its build"
    assert steps[0]["buildJobId"] == build_id


# --- one naming style, one timestamp format, on every route ----------------------------------


@pytest.mark.slow
def test_every_json_route_answers_in_camel_case_with_one_timestamp_format(app, client, auth, workers):
    workflow_id = create_workflow(client, auth, modules=2)
    path_id = create_path(client, auth, concepts=2)
    workers()
    assert client.post(f"/api/v3/workflow/{workflow_id}/step10", headers=auth).status_code == 202
    build_id = start_build(client, auth, path_id)
    wait_for_status(client, auth, workflow_id, "complete")
    wait_for_build(client, auth, build_id)

    documents = [
        _get(client, url, auth)
        for url in (
            "/api/v3/workflows",
            f"/api/v3/workflow/{workflow_id}",
            f"/api/v3/workflow/{workflow_id}/step10/status",
            f"/api/v3/workflow/{workflow_id}/step10",
            "/api/learning-paths",
            f"/api/learning-paths/{path_id}",
            f"/api/jobs/{build_id}",
            f"/api/jobs/path/{path_id}",
            "/api/jobs",
            f"/api/jobs/{build_id}/steps",
            "/api/dead-letter",
        )
    ]
    stream = client.get(f"/api/jobs/{build_id}/stream", headers=auth).get_data(as_text=True)
    events = [json.loads(line[6:]) for line in stream.splitlines() if line.startswith("data: ")]

    for document in [*documents, events]:
        assert_consistent(document)
    activity = documents[3]["data"]["modules"][0]["lessonPlans"][0]["activities"][0]
    assert set(activity) == {"name", "kind", "durationMinutes"}
    assert events and all(TIMESTAMP.match(e["timestamp"]) for e in events)
