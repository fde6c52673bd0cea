"""The lesson-plan pipeline end to end: real Redis, real worker processes, a real SQLite file."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import LessonPlan, Module
from tests.helpers import create_workflow, status_of, wait_for_status


def _modules(app, workflow_id):  # type: ignore[no-untyped-def]
    with app.app_context():
        return db.session.scalars(
            select(Module).where(Module.workflow_id == workflow_id).order_by(Module.position)
        ).all()


def _lesson_count(app, workflow_id) -> int:  # type: ignore[no-untyped-def]
    with app.app_context():
        return db.session.scalar(
            select(func.count(LessonPlan.id)).join(Module).where(Module.workflow_id == workflow_id)
        )


@pytest.mark.slow
def test_six_modules_complete_one_at_a_time_in_order(app, client, auth, workers):
    workflow_id = create_workflow(client, auth, modules=6, hours=2.5)
    workers(GENERATOR_LATENCY_MS="150")

    started = client.post(f"/api/v3/workflow/{workflow_id}/step10", headers=auth)

    assert started.status_code == 202
    assert started.get_json()["data"]["jobsQueued"] == 1
    status = wait_for_status(client, auth, workflow_id, "complete")
    modules = _modules(app, workflow_id)
    assert [m.status for m in modules] == ["completed"] * 6
    for earlier, later in zip(modules, modules[1:], strict=False):
        assert later.started_at >= earlier.completed_at, "a module started before the previous ended"
    assert status["modulesGenerated"] == 6 and status["allComplete"] is True
    assert status["totalLessons"] == _lesson_count(app, workflow_id) == 6 * 3
    assert status["totalContactHours"] == 6 * 2.5
    assert [d["jobId"] for d in status["jobs"]["details"]] == [
        f"step10-{workflow_id}-module-{i}" for i in range(6)
    ]


@pytest.mark.slow
def test_generated_lessons_add_up_to_each_modules_contact_hours(app, client, auth, workers):
    workflow_id = create_workflow(client, auth, modules=2, hours=1.75)
    workers()
    client.post(f"/api/v3/workflow/{workflow_id}/step10", headers=auth)
    wait_for_status(client, auth, workflow_id, "complete")

    data = client.get(f"/api/v3/workflow/{workflow_id}/step10", headers=auth).get_json()["data"]

    for module in data["modules"]:
        minutes = sum(lesson["durationMinutes"] for lesson in module["lessonPlans"])
        assert minutes == 105
        for lesson in module["lessonPlans"]:
            assert lesson["objectives"] and lesson["assessment"]
            assert sum(a["durationMinutes"] for a in lesson["activities"]) == lesson["durationMinutes"]
    assert data["totalLessons"] == 4


def test_status_before_any_start_is_pending(client, auth):
    workflow_id = create_workflow(client, auth, modules=2)

    status = status_of(client, auth, workflow_id)

    assert status["status"] == "pending"
    assert status["jobs"] == {"total": 0, "active": 0, "completed": 0, "failed": 0, "details": []}
