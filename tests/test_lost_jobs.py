"""Jobs that Redis counts as alive but no worker will run: popped by a worker that died,
or swallowed by what a killed worker left behind. Real workers, real Redis."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from rq import Worker
from rq.job import Job, JobStatus
from sqlalchemy import select, update

from app.extensions import db
from app.jobs.enqueue import enqueue_unique
from app.jobs.queues import BUILD_PATH_QUEUE, LESSON_PLANS_QUEUE
from app.models import Build, BuildStatus, BuildStep
from app.pipelines.learning_paths.finalize import finalize_build
from app.pipelines.learning_paths.queueing import finalize_job_id
from tests.helpers import create_path, create_workflow, start_build, wait_for_build, wait_for_status
from tests.services import wait_until

pytestmark = pytest.mark.slow


def _parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def _session_members(session_id: int) -> list[int]:
    """Every live process in the worker group's session, wherever it was re-parented to
    (zombies, exited and waiting for an init that may never reap them, are not counted)."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
                if state != "Z" and os.getsid(int(entry.name)) == session_id:
                    members.append(int(entry.name))
            except (OSError, IndexError):
                continue
    return members


def _build_path_workers(redis) -> set[int]:  # type: ignore[no-untyped-def]
    """Pids of the registered build-path workers (a killed one stays registered a while)."""
    return {w.pid for w in Worker.all(connection=redis) if BUILD_PATH_QUEUE in w.queue_names()}


def _pop_as_a_dying_worker(redis, queue: str) -> str:  # type: ignore[no-untyped-def]
    """Take the next job off the queue as a worker's pop does, and never start it."""
    job_id = wait_until(lambda: redis.lpop(f"rq:queue:{queue}"), timeout=10, message=f"a job on {queue}")
    job_id = job_id.decode()
    assert Job.fetch(job_id, connection=redis).get_status() == JobStatus.QUEUED
    return job_id


def test_a_killed_worker_leaves_no_process_behind_and_the_next_job_still_runs(
    app, client, auth, workers, redis_server
):
    group = workers()
    redis = redis_server.client()
    wait_until(lambda: len(Worker.all(connection=redis)) == 5, timeout=30, message="five workers")
    (victim,) = _build_path_workers(redis)
    os.kill(victim, signal.SIGKILL)
    wait_until(lambda: _build_path_workers(redis) - {victim}, timeout=30, message="a new build-path worker")

    strays = [pid for pid in _session_members(group.pid) if pid != group.pid and _parent_of(pid) != group.pid]
    assert strays == [], "every worker process is the supervisor's own child; none outlived its parent"

    build_id = start_build(client, auth, create_path(client, auth, concepts=2))
    wait_for_build(client, auth, build_id, timeout=60)


def test_a_step_popped_by_a_worker_that_died_is_run_again(app, client, auth, workers, redis_server):
    build_id = start_build(client, auth, create_path(client, auth, concepts=2))
    job_id = _pop_as_a_dying_worker(redis_server.client(), BUILD_PATH_QUEUE)

    workers()
    wait_for_build(client, auth, build_id, timeout=60)
    with app.app_context():
        step = db.session.get(BuildStep, int(job_id.removeprefix("step-")))
        assert (step.type, step.status, step.attempts) == ("concepts", "completed", 1)


def test_a_module_popped_by_a_worker_that_died_is_run_again(app, client, auth, workers, redis_server):
    workflow_id = create_workflow(client, auth, modules=2)
    assert client.post(f"/api/v3/workflow/{workflow_id}/step10", headers=auth).status_code == 202
    _pop_as_a_dying_worker(redis_server.client(), LESSON_PLANS_QUEUE)

    workers()
    status = wait_for_status(client, auth, workflow_id, "complete", timeout=60)
    assert status["modulesGenerated"] == 2


def test_a_finalize_popped_by_a_worker_that_died_is_queued_again(app, client, auth, workers, redis_server):
    group = workers()
    build_id = start_build(client, auth, create_path(client, auth, concepts=2))
    wait_for_build(client, auth, build_id, timeout=60)
    group.stop()
    # The state a crash leaves: every step done, the build open, its finalize job taken.
    with app.app_context():
        db.session.execute(
            update(Build).where(Build.id == build_id).values(status=BuildStatus.PROCESSING, completed_at=None)
        )
        db.session.commit()
        assert enqueue_unique(BUILD_PATH_QUEUE, finalize_build, build_id, job_id=finalize_job_id(build_id))
    _pop_as_a_dying_worker(redis_server.client(), BUILD_PATH_QUEUE)

    workers()
    build = wait_for_build(client, auth, build_id, timeout=60)
    assert build["completedAt"] is not None
    with app.app_context():
        assert db.session.scalar(select(Build.status).where(Build.id == build_id)) == "completed"


def test_workers_stop_when_their_supervisor_is_killed(app, workers, redis_server):
    group = workers()
    wait_until(lambda: len(Worker.all(connection=redis_server.client())) == 5, timeout=30, message="workers")
    children = [pid for pid in _session_members(group.pid) if pid != group.pid]
    # the five worker slots are threads of one process (50 threads a process before a second)
    assert len(children) == 1
    assert {w.pid for w in Worker.all(connection=redis_server.client())} == set(children)
    os.kill(group.pid, signal.SIGKILL)  # no chance to stop them itself
    group.process.wait(timeout=10)
    wait_until(
        lambda: not _session_members(group.pid),
        timeout=30,
        message="the workers to stop with their supervisor, not to run on beside the next one",
    )
