"""Controlling builds with real workers: cancel, pause and resume, turns per user, SIGKILL."""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from rq import Worker
from sqlalchemy import func, select

from app.database import utcnow
from app.extensions import db
from app.jobs.queues import GENERATE_KU_QUEUE
from app.models import BuildEvent, BuildStep, KnowledgeUnit
from app.models.statuses import IN_FLIGHT
from tests.helpers import build_of, create_path, start_build, wait_for_build
from tests.helpers.users import make_user
from tests.services import wait_until

pytestmark = pytest.mark.slow


def _steps(app, build_id):  # type: ignore[no-untyped-def]
    with app.app_context():
        return list(db.session.scalars(select(BuildStep).where(BuildStep.build_id == build_id)))


def _units_done(app, build_id) -> int:  # type: ignore[no-untyped-def]
    return sum(1 for s in _steps(app, build_id) if s.type == "knowledge-units" and s.status == "completed")


def _in_flight(app, build_id) -> list[BuildStep]:  # type: ignore[no-untyped-def]
    """Steps a worker holds or may still pick up."""
    return [s for s in _steps(app, build_id) if s.status in IN_FLIGHT]


def _running_for(app, build_id, low: float, high: float) -> bool:  # type: ignore[no-untyped-def]
    """Some step has been running between `low` and `high` seconds: under way, and with time
    left before it could finish (the generator takes 1.5 s)."""
    now = utcnow()
    running = [s for s in _steps(app, build_id) if s.status == "running"]
    return any(low <= (now - s.started_at).total_seconds() <= high for s in running)


def test_twenty_concurrent_build_requests_get_one_202_and_nineteen_409s(app, client, auth, web):
    path_id = create_path(client, auth)
    url = f"{web}/api/jobs/build/{path_id}"

    with ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(pool.map(lambda _: requests.post(url, headers=auth, timeout=30), range(20)))

    codes = sorted(r.status_code for r in responses)
    assert codes == [202] + [409] * 19
    winner = next(r.json()["jobId"] for r in responses if r.status_code == 202)
    for refused in (r for r in responses if r.status_code == 409):
        assert refused.json()["error"]["details"] == {"jobId": winner}
        assert winner in refused.json()["error"]["message"]


def test_cancel_mid_build_stops_everything_and_nothing_starts_afterwards(app, client, auth, workers):
    path_id = create_path(client, auth, concepts=4)
    workers(GENERATOR_LATENCY_MS="1500")
    build_id = start_build(client, auth, path_id)
    wait_until(
        lambda: _units_done(app, build_id) >= 1 and _running_for(app, build_id, 0.2, 0.6),
        timeout=60,
        message="a unit to complete and another to be well under way",
    )

    assert client.post(f"/api/jobs/{build_id}/cancel", headers=auth).status_code == 200
    cancelled_at = utcnow()
    wait_until(lambda: not _in_flight(app, build_id), timeout=30, message="the running steps to stop")
    time.sleep(1.5)  # the behaviour under test: nothing starts afterwards

    build = build_of(client, auth, build_id)
    assert build["status"] == "cancelled" and build["progressPercent"] < 100
    steps = _steps(app, build_id)
    assert all(s.status in ("completed", "cancelled") for s in steps)
    assert not [s for s in steps if s.started_at and s.started_at > cancelled_at], (
        "a step started after cancel"
    )
    stopped = [s for s in steps if s.status == "cancelled" and s.started_at]
    assert stopped, "the steps running at the cancel are stopped, not left to finish"
    assert build["errorCategories"]["cancelled"] == sum(1 for s in steps if s.status == "cancelled")
    again = client.post(f"/api/jobs/{build_id}/cancel", headers=auth)
    assert again.status_code == 400 and again.get_json()["error"]["code"] == "invalid_state"


def test_pause_starts_no_new_step_and_resume_finishes_the_build(app, client, auth, workers):
    path_id = create_path(client, auth, concepts=3)
    workers(GENERATOR_LATENCY_MS="400")
    build_id = start_build(client, auth, path_id)
    wait_until(lambda: _units_done(app, build_id) >= 1, timeout=60, message="a unit to complete")

    assert client.post(f"/api/jobs/{build_id}/pause", headers=auth).status_code == 200
    paused_at = utcnow()
    wait_until(
        lambda: not _in_flight(app, build_id), timeout=30, message="the steps running at the pause to end"
    )
    settled = {s.id: s.status for s in _steps(app, build_id)}
    time.sleep(2)  # the behaviour under test: nothing starts or changes while paused

    assert build_of(client, auth, build_id)["status"] == "paused"
    late = [s for s in _steps(app, build_id) if s.started_at and s.started_at > paused_at]
    assert not late, "a step started while the build was paused"
    assert {s.id: s.status for s in _steps(app, build_id)} == settled
    assert any(status == "pending" for status in settled.values())

    assert client.post(f"/api/jobs/{build_id}/resume", headers=auth).status_code == 200
    build = wait_for_build(client, auth, build_id)
    assert build["progressPercent"] == 100
    assert client.post(f"/api/jobs/{build_id}/resume", headers=auth).status_code == 400


def test_a_users_builds_beyond_the_limit_wait_while_other_users_builds_run(app, client, auth, workers):
    app.config["MAX_ACTIVE_BUILDS_PER_USER"] = 1
    other = make_user(app, "other@example.com")
    first, second = create_path(client, auth, concepts=2), create_path(client, auth, concepts=2)
    theirs = create_path(client, other, concepts=2)

    builds = [
        start_build(client, auth, first),
        start_build(client, auth, second),
        start_build(client, other, theirs),
    ]

    assert [build_of(client, a, b)["status"] for a, b in zip((auth, auth, other), builds, strict=True)] == [
        "processing",
        "pending",
        "processing",
    ]
    workers(MAX_ACTIVE_BUILDS_PER_USER="1")
    for build_id, who in zip(builds, (auth, auth, other), strict=True):
        wait_for_build(client, who, build_id)
    first_build, second_build = (build_of(client, auth, b) for b in builds[:2])
    assert second_build["startedAt"] >= first_build["completedAt"]


def _busy_unit_worker(app, redis_server) -> tuple[int, int] | None:  # type: ignore[no-untyped-def]
    """(pid, step id) of a generate-ku worker whose step is well under way."""
    for worker in Worker.all(connection=redis_server.client()):
        job_id = worker.get_current_job_id()
        if GENERATE_KU_QUEUE not in worker.queue_names() or not job_id:
            continue
        with app.app_context():
            step = db.session.get(BuildStep, int(job_id.removeprefix("step-")))
        if step is not None and step.status == "running" and step.progress >= 20:
            return worker.pid, step.id
    return None


def test_sigkill_of_a_worker_during_the_unit_stage_loses_and_duplicates_nothing(
    app, client, auth, workers, redis_server
):
    path_id = create_path(client, auth, concepts=3)
    workers(GENERATOR_LATENCY_MS="1500")
    build_id = start_build(client, auth, path_id)

    victim, step_id = wait_until(
        lambda: _busy_unit_worker(app, redis_server), timeout=60, message="a unit step well under way"
    )
    os.kill(victim, signal.SIGKILL)

    build = wait_for_build(client, auth, build_id, timeout=120)
    killed = next(s for s in _steps(app, build_id) if s.id == step_id)
    assert (killed.status, killed.worker_losses, killed.attempts) == ("completed", 1, 2)
    with app.app_context():
        units = db.session.scalar(select(func.count(KnowledgeUnit.id)))
        distinct = db.session.scalar(
            select(func.count()).select_from(
                select(KnowledgeUnit.sub_concept_id, KnowledgeUnit.title).distinct().subquery()
            )
        )
        finals = db.session.scalar(
            select(func.count(BuildEvent.id)).where(
                BuildEvent.build_id == build_id, BuildEvent.type == "completed"
            )
        )
    assert units == distinct == build["totalKnowledgeUnits"]
    assert finals == 1, "finalize took effect exactly once"
