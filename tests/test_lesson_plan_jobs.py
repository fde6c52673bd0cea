"""The module job called directly in an app context, against real Redis and SQLite."""

from __future__ import annotations

from datetime import timedelta

import pytest
from rq import Queue
from sqlalchemy import func, select, update

from app.database import utcnow
from app.extensions import db
from app.generators.errors import TransientGenerationError
from app.jobs import claims
from app.jobs.queues import LESSON_PLANS_QUEUE, backoff_intervals
from app.models import LessonPlan, LessonPlanRun, Module
from app.pipelines.lesson_plans import run as lesson_plan_run
from tests.helpers import create_workflow


def _first_module(workflow_id: str) -> Module:
    return db.session.scalar(select(Module).where(Module.workflow_id == workflow_id, Module.position == 0))


def _lesson_count(module_id: int) -> int:
    return db.session.scalar(select(func.count(LessonPlan.id)).where(LessonPlan.module_id == module_id))


@pytest.fixture
def started(app, client, auth):  # type: ignore[no-untyped-def]
    """A two-module workflow whose run has queued module 0."""
    workflow_id = create_workflow(client, auth, modules=2, hours=2)
    client.post(f"/api/v3/workflow/{workflow_id}/step10", headers=auth)
    with app.app_context():
        yield workflow_id, _first_module(workflow_id).id


def test_a_duplicate_delivery_neither_reruns_nor_duplicates(app, started):
    workflow_id, module_id = started

    lesson_plan_run.generate_module_lesson_plans(module_id)
    again = lesson_plan_run.generate_module_lesson_plans(module_id)

    assert again == "skipped: module is completed"
    assert _lesson_count(module_id) == 2
    assert db.session.get(Module, module_id).attempts == 1


def test_running_a_module_again_replaces_its_lessons(app, started):
    workflow_id, module_id = started
    lesson_plan_run.generate_module_lesson_plans(module_id)
    db.session.execute(update(Module).where(Module.id == module_id).values(status="queued"))
    db.session.commit()

    lesson_plan_run.generate_module_lesson_plans(module_id)

    assert db.session.get(Module, module_id).attempts == 2
    orders = db.session.scalars(select(LessonPlan.order).where(LessonPlan.module_id == module_id))
    assert sorted(orders) == [0, 1]


def test_a_stale_attempt_cannot_overwrite_a_newer_one(app, started):
    workflow_id, module_id = started
    stale = claims.claim(Module, module_id)
    db.session.execute(  # its lease lapses and a newer attempt takes the module
        update(Module).where(Module.id == module_id).values(lease_expires_at=utcnow() - timedelta(seconds=1))
    )
    db.session.commit()
    fresh = claims.claim(Module, module_id)

    drafts = lesson_plan_run._produce_lesson_plans(db.session.get(Module, module_id), fresh)
    assert lesson_plan_run._store_lesson_plans(stale, drafts) is False
    assert lesson_plan_run._store_lesson_plans(fresh, drafts) is True
    assert _lesson_count(module_id) == 2


def test_a_completed_module_queues_the_next_one(app, started, redis_server):
    workflow_id, module_id = started
    queue = Queue(LESSON_PLANS_QUEUE, connection=redis_server.client())
    queue.empty()

    lesson_plan_run.generate_module_lesson_plans(module_id)

    assert queue.job_ids == [f"step10-{workflow_id}-module-1"]
    next_module = db.session.scalar(
        select(Module).where(Module.workflow_id == workflow_id, Module.position == 1)
    )
    assert next_module.status == "queued"


def test_a_failure_outside_rq_is_final_and_recorded_with_traceback(app, started):
    workflow_id, module_id = started
    work = claims.claim(Module, module_id)
    try:
        raise TransientGenerationError("the provider hiccuped")
    except TransientGenerationError as exc:
        lesson_plan_run._record_failure(work, exc)

    module = db.session.get(Module, module_id)
    assert module.status == "failed" and module.failed_attempts == 1
    assert module.error == "TransientGenerationError: the provider hiccuped"
    assert module.error_category == "provider_error"
    assert "raise TransientGenerationError" in module.traceback
    run = db.session.scalar(select(LessonPlanRun).where(LessonPlanRun.workflow_id == workflow_id))
    assert run.status == "failed" and run.error.startswith("Module 1 ("), "numbered for people, from 1"


def test_the_lapsed_lease_of_a_lost_worker_is_requeued_then_given_up(app, started, redis_server):
    workflow_id, module_id = started
    app.config["JOB_MAX_WORKER_LOSSES"] = 2

    def lose_worker() -> int:
        claims.claim(Module, module_id)
        db.session.execute(
            update(Module)
            .where(Module.id == module_id)
            .values(lease_expires_at=utcnow() - timedelta(seconds=1))
        )
        db.session.commit()
        return lesson_plan_run.reconcile_workflow(workflow_id)

    assert lose_worker() == 1
    module = db.session.get(Module, module_id)
    assert (module.status, module.worker_losses) == ("queued", 1)
    assert lose_worker() == 0
    db.session.expire_all()
    module = db.session.get(Module, module_id)
    assert (module.status, module.error_category) == ("failed", "worker_lost")
    run = db.session.scalar(select(LessonPlanRun).where(LessonPlanRun.workflow_id == workflow_id))
    assert run.status == "failed"


@pytest.mark.parametrize(
    ("kind", "attempts", "delay", "expected"),
    [
        ("exponential", 3, 1000, [1.0, 2.0]),
        ("exponential", 5, 250, [0.25, 0.5, 1.0, 2.0]),
        ("fixed", 3, 500, [0.5, 0.5]),
        ("exponential", 1, 1000, []),
    ],
)
def test_backoff_intervals_follow_the_settings(kind, attempts, delay, expected):
    config = {"JOB_BACKOFF_TYPE": kind, "JOB_MAX_ATTEMPTS": attempts, "JOB_BACKOFF_DELAY": delay}

    assert backoff_intervals(config) == expected
