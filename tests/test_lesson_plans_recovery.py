"""Crashes, restarts and flaky generation: the chain still completes, with no duplicate lessons."""

from __future__ import annotations

import signal
import time

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import LessonPlan, LessonPlanRun, Module
from tests.helpers import create_workflow, status_of, wait_for_status
from tests.services import wait_until

pytestmark = pytest.mark.slow


def _module(app, workflow_id, position):  # type: ignore[no-untyped-def]
    with app.app_context():
        return db.session.scalar(
            select(Module).where(Module.workflow_id == workflow_id, Module.position == position)
        )


def _lessons_per_module(app, workflow_id) -> list[int]:  # type: ignore[no-untyped-def]
    with app.app_context():
        rows = db.session.execute(
            select(Module.position, func.count(LessonPlan.id))
            .outerjoin(LessonPlan)
            .where(Module.workflow_id == workflow_id)
            .group_by(Module.position)
            .order_by(Module.position)
        ).all()
    return [count for _, count in rows]


def _running_with_progress(app, workflow_id, position):  # type: ignore[no-untyped-def]
    module = _module(app, workflow_id, position)
    return module.status == "running" and module.progress >= 20


def test_sigkill_of_the_worker_mid_module_reruns_that_module_without_duplicates(app, client, auth, workers):
    workflow_id = create_workflow(client, auth, modules=3, hours=2)
    first = workers(GENERATOR_LATENCY_MS="3000")
    client.post(f"/api/v3/workflow/{workflow_id}/step10", headers=auth)
    wait_until(lambda: _running_with_progress(app, workflow_id, 1), message="module 1 to run")

    first.signal_group(signal.SIGKILL)
    killed_at = time.monotonic()
    first.process.wait(timeout=10)
    workers(GENERATOR_LATENCY_MS="300")
    wait_until(lambda: _module(app, workflow_id, 1).attempts >= 2, message="module 1 to rerun")
    recovery_s = time.monotonic() - killed_at

    status = wait_for_status(client, auth, workflow_id, "complete", timeout=60)
    module = _module(app, workflow_id, 1)
    assert module.worker_losses == 1
    assert _lessons_per_module(app, workflow_id) == [2, 2, 2]
    assert status["totalLessons"] == 6
    # Lease TTL 3 s + sweep interval 1 s in tests: the rerun starts well inside 10 s.
    assert recovery_s < 10, f"recovery took {recovery_s:.1f}s"


def test_redis_stopped_and_restarted_mid_chain_still_completes(app, client, auth, workers, redis_server):
    workflow_id = create_workflow(client, auth, modules=4, hours=1)
    worker = workers(GENERATOR_LATENCY_MS="1500")
    client.post(f"/api/v3/workflow/{workflow_id}/step10", headers=auth)
    wait_until(lambda: _running_with_progress(app, workflow_id, 1), message="module 1 to run")

    redis_server.stop()
    time.sleep(2)  # the outage itself: Redis stays away this long
    redis_server.start()

    wait_for_status(client, auth, workflow_id, "complete", timeout=90)
    assert worker.alive(), "the worker must outlive a Redis restart"
    assert _lessons_per_module(app, workflow_id) == [1, 1, 1, 1]


def test_transient_failures_are_retried_and_the_chain_completes(app, client, auth, workers):
    workflow_id = create_workflow(client, auth, modules=20, hours=1)
    # 12 attempts make a module failing for good (0.3**12) practically impossible. The
    # policy travels with the job, so the API (here, the test's app) and the worker share it.
    policy = {"JOB_MAX_ATTEMPTS": "12", "JOB_BACKOFF_TYPE": "fixed"}
    app.config.update(JOB_MAX_ATTEMPTS=12, JOB_BACKOFF_TYPE="fixed")
    workers(GENERATOR_FAILURE_RATE="0.3", **policy)
    client.post(f"/api/v3/workflow/{workflow_id}/step10", headers=auth)

    status = wait_for_status(client, auth, workflow_id, "complete", timeout=180)

    retried = [d for d in status["jobs"]["details"] if d["attemptsMade"] > 0]
    assert retried, "with a 30% failure rate some module must have needed a retry"
    assert _lessons_per_module(app, workflow_id) == [1] * 20


def test_a_module_that_always_fails_fails_the_run_and_a_new_start_resumes_there(app, client, auth, workers):
    workflow_id = create_workflow(client, auth, modules=4, hours=1)
    workflow_url = f"/api/v3/workflow/{workflow_id}/step10"
    broken = workers(GENERATOR_FAIL_ON="Module 3")
    client.post(workflow_url, headers=auth)

    status = wait_for_status(client, auth, workflow_id, "failed", timeout=60)

    details = {d["moduleIndex"]: d for d in status["jobs"]["details"]}
    assert details[2]["state"] == "failed" and details[2]["attemptsMade"] == 3
    assert "fail on 'Module 3'" in status["error"]["message"]
    assert status["modulesGenerated"] == 2 and 3 not in details
    first_done = _module(app, workflow_id, 0).completed_at

    broken.stop()
    workers()
    restarted = client.post(workflow_url, headers=auth).get_json()["data"]
    assert restarted["jobsQueued"] == 1 and restarted["modulesGenerated"] == 2

    wait_for_status(client, auth, workflow_id, "complete", timeout=60)
    assert _module(app, workflow_id, 0).completed_at == first_done, "module 0 must not rerun"
    assert _module(app, workflow_id, 2).failed_attempts == 0
    assert _lessons_per_module(app, workflow_id) == [1, 1, 1, 1]
    with app.app_context():
        runs = db.session.scalars(select(LessonPlanRun.status).order_by(LessonPlanRun.created_at))
        assert list(runs) == ["failed", "complete"]


def test_sigterm_finishes_the_module_in_hand_then_exits(app, client, auth, workers):
    workflow_id = create_workflow(client, auth, modules=2, hours=1)
    worker = workers(GENERATOR_LATENCY_MS="2000")
    client.post(f"/api/v3/workflow/{workflow_id}/step10", headers=auth)
    wait_until(lambda: _running_with_progress(app, workflow_id, 0), message="module 0 to run")

    worker.process.send_signal(signal.SIGTERM)
    worker.process.wait(timeout=20)

    module = _module(app, workflow_id, 0)
    assert module.status == "completed" and module.attempts == 1
    assert status_of(client, auth, workflow_id)["modulesGenerated"] == 1
