"""Many jobs at once in one worker process, one RQ worker per thread: each is still a worker
RQ and the admin pages see, job timeouts, SIGTERM and SIGKILL keep their guarantees, and steps
waiting for the rate limit neither poll Redis nor hold up a stopping worker. Real workers,
real Redis, real signals."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest
from rq import Worker
from sqlalchemy import func, select

from app.extensions import db
from app.jobs.limiter import wait_for_slot
from app.jobs.queues import (
    BUILD_PATH_QUEUE,
    DEAD_LETTER_QUEUE,
    DECOMPOSE_QUEUE,
    GENERATE_KU_QUEUE,
    LESSON_PLANS_QUEUE,
)
from app.jobs.supervisor import worker_processes
from app.jobs.threaded import format_slot, parse_slot
from app.models import BuildEvent, BuildStep, KnowledgeUnit
from tests.helpers import build_of, create_path, start_build, wait_for_build
from tests.helpers.web import sign_in
from tests.services import wait_until

pytestmark = pytest.mark.slow
# 1 + 10 + 40 worker threads in one process
ORCHESTRATOR_QUEUES = (BUILD_PATH_QUEUE, LESSON_PLANS_QUEUE, DEAD_LETTER_QUEUE)
MANY = {"JOB_CONCURRENCY_DECOMPOSE": "10", "JOB_CONCURRENCY_GENERATE_KU": "40", "WORKER_PROCESSES": "1"}


def _steps(app, build_id):  # type: ignore[no-untyped-def]
    with app.app_context():
        return list(db.session.scalars(select(BuildStep).where(BuildStep.build_id == build_id)))


def _running(app, build_id) -> list[BuildStep]:  # type: ignore[no-untyped-def]
    return [s for s in _steps(app, build_id) if s.status == "running"]


def _units_running(app, build_id, at_least: int) -> list[BuildStep] | None:  # type: ignore[no-untyped-def]
    running = [s for s in _running(app, build_id) if s.type == "knowledge-units"]
    return running if len(running) >= at_least else None


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, IndexError):
                continue
    return found


def _assert_exact(app, build) -> None:  # type: ignore[no-untyped-def]
    """Every unit once, and finalize once."""
    with app.app_context():
        units = db.session.scalar(select(func.count(KnowledgeUnit.id)))
        distinct = db.session.scalar(
            select(func.count()).select_from(
                select(KnowledgeUnit.sub_concept_id, KnowledgeUnit.title).distinct().subquery()
            )
        )
        finals = db.session.scalar(
            select(func.count(BuildEvent.id)).where(
                BuildEvent.build_id == build["id"], BuildEvent.type == "completed"
            )
        )
    assert units == distinct == build["totalKnowledgeUnits"]
    assert finals == 1, "finalize took effect exactly once"


def test_one_process_runs_dozens_of_steps_at_once_each_thread_a_registered_worker(
    app, client, auth, workers, redis_server
):
    path_id = create_path(client, auth, concepts=10)
    group = workers(**MANY, GENERATOR_LATENCY_MS="3000")
    redis = redis_server.client()
    wait_until(lambda: len(Worker.all(connection=redis)) == 51, timeout=60, message="51 workers")
    registered = Worker.all(connection=redis)
    children = _children(group.pid)
    assert len(children) == 1, "one worker process"
    assert {w.pid for w in registered} == set(children)
    assert len({w.name for w in registered}) == 51, "each thread is a worker of its own name"

    build_id = start_build(client, auth, path_id)
    wait_until(lambda: len(_running(app, build_id)) >= 20, timeout=60, message="20 steps running at once")
    admin_client = app.test_client()
    sign_in(app, admin_client, "root@example.com", admin=True)
    page = admin_client.get("/admin/workers")
    assert page.status_code == 200
    assert page.get_data(as_text=True).count("step-") >= 20, "the page shows each thread's job"
    _assert_exact(app, wait_for_build(client, auth, build_id, timeout=120))


def test_a_job_timeout_stops_a_step_running_in_a_worker_thread(app, client, auth, workers):
    path_id = create_path(client, auth, concepts=1)
    workers(GENERATOR_LATENCY_MS="6000", JOB_TIMEOUT_S="1", JOB_MAX_ATTEMPTS="1")
    build_id = start_build(client, auth, path_id)
    build = wait_for_build(client, auth, build_id, "failed", timeout=60)
    assert build["errorCategories"].get("timeout", 0) >= 1, build["errorCategories"]


def test_sigkill_of_a_process_with_dozens_of_steps_in_flight_recovers_each_once(
    app, client, auth, workers, redis_server
):
    path_id = create_path(client, auth, concepts=10)
    workers(**MANY, GENERATOR_LATENCY_MS="4000")
    build_id = start_build(client, auth, path_id)
    in_flight = wait_until(
        lambda: _units_running(app, build_id, at_least=24),
        timeout=90,
        message="24 unit steps running at once",
    )
    redis = redis_server.client()
    victims = {w.pid for w in Worker.all(connection=redis) if GENERATE_KU_QUEUE in w.queue_names()}
    assert len(victims) == 1
    os.kill(victims.pop(), signal.SIGKILL)

    build = wait_for_build(client, auth, build_id, timeout=180)
    after = {s.id: s for s in _steps(app, build_id)}
    for step in in_flight:
        assert (after[step.id].status, after[step.id].worker_losses) == ("completed", 1), step.id
    _assert_exact(app, build)


def test_sigterm_puts_back_a_step_waiting_for_a_rate_limit_slot_at_once(app, client, auth, workers):
    path_id = create_path(client, auth, concepts=2)
    group = workers(JOB_RATE_LIMIT_MAX="1", JOB_RATE_LIMIT_DURATION="60000", WORKER_SHUTDOWN_TIMEOUT_S="25")
    build_id = start_build(client, auth, path_id)
    waiting = wait_until(
        lambda: next((s for s in _running(app, build_id) if s.rate_limit_next_slot_at is not None), None),
        timeout=30,
        message="a step waiting for the rate limit",
    )
    started = time.monotonic()
    group.process.send_signal(signal.SIGTERM)
    step = wait_until(
        lambda: next(
            (s for s in _steps(app, build_id) if s.id == waiting.id and s.status != "running"), None
        ),
        timeout=2,
        message="the waiting step to be put back within 2 s (not after the 25 s grace period)",
    )
    group.process.wait(timeout=30)
    exited_after = time.monotonic() - started

    assert (step.status, step.failed_attempts) == ("queued", 0), "put back, not failed"
    # the put-back above is the promise; the exit (idle workers, helpers) is not held by the 25 s grace
    assert exited_after < 10, f"the worker took {exited_after:.1f}s to leave a step that only waited"
    assert build_of(client, auth, build_id)["status"] == "processing"


def test_idle_worker_threads_block_long_and_still_stop_at_once_on_sigterm(workers, redis_server):
    """Idle threads wait for a job in 10 s blocking pops (polling every second cost hundreds of
    Redis round trips a second in a process of hundreds of threads); SIGTERM wakes them with
    CLIENT UNBLOCK, so the process still leaves at once, not a pop later."""
    group = workers(**MANY)
    redis = redis_server.client()
    wait_until(lambda: len(Worker.all(connection=redis)) == 51, timeout=60, message="51 workers")
    time.sleep(1.5)  # every thread is inside its blocking pop
    blocked = int(redis.info("clients")["blocked_clients"])
    commands_before = int(redis.info("stats")["total_commands_processed"])
    time.sleep(3)
    idle_commands = int(redis.info("stats")["total_commands_processed"]) - commands_before
    started = time.monotonic()
    group.process.send_signal(signal.SIGTERM)
    group.process.wait(timeout=30)
    exited_after = time.monotonic() - started

    assert blocked >= 45, f"{blocked} of 51 workers blocked on their queues"
    # Measured: polling every second, 1,239 commands in these 3 s (each thread's heartbeat, state
    # and pop, ~8 a second); blocking 10 s, 166, most of them the process's scheduler and
    # recovery sweep. The bound leaves room for every thread's pop ending inside the 3 s.
    assert idle_commands < 600, f"{idle_commands} Redis commands in 3 s from 51 idle threads"
    assert exited_after < 5, f"the idle worker took {exited_after:.1f} s to stop"
    assert Worker.all(connection=redis) == [], "every thread's worker registration removed"


def test_a_hundred_waiters_in_a_process_leave_redis_quiet(app, redis_server):
    """Only one waiter per process asks Redis for a slot; the rest wait on it, not on Redis."""
    config = {**app.config, "JOB_RATE_LIMIT_MAX": 1, "JOB_RATE_LIMIT_DURATION": 1000}
    redis = redis_server.client()
    stop = threading.Event()
    admitted: list[float] = []

    class Stopped(Exception):
        pass

    def sleep(seconds: float) -> None:
        if stop.wait(seconds):
            raise Stopped

    def wait() -> None:
        try:
            admitted.append(wait_for_slot(config, sleep=sleep))
        except Stopped:
            pass

    waiters = [threading.Thread(target=wait, daemon=True) for _ in range(100)]
    for waiter in waiters:
        waiter.start()
    time.sleep(1)  # let them settle into their waits
    before = redis.info("stats")["total_commands_processed"]
    admitted_before = len(admitted)
    time.sleep(4)
    commands = redis.info("stats")["total_commands_processed"] - before - 1
    admitted_during = len(admitted) - admitted_before
    stop.set()
    for waiter in waiters:
        waiter.join(timeout=30)

    assert 3 <= admitted_during <= 5, "one slot a second still goes to a waiter"
    # Per slot: the gate holder's hit and window read, and the fair turn's look at who waits,
    # listing, admission (~25 commands); the old limiter, every waiter polling, sent 2,324 here.
    assert commands <= 40 * admitted_during, f"{commands} Redis commands for {admitted_during} slots"


def test_two_machines_one_killed_mid_build_finish_it_exactly_without_waiting_on_its_scheduler_lock(
    app, client, auth, workers, redis_server
):
    path_id = create_path(client, auth, concepts=6)
    flaky = {"GENERATOR_LATENCY_MS": "400", "GENERATOR_FAILURE_RATE": "0.3", "JOB_MAX_ATTEMPTS": "12"}
    redis = redis_server.client()
    first = workers(**flaky)
    wait_until(lambda: redis.exists("rq:scheduler-lock:generate-ku"), timeout=30, message="a scheduler lock")
    workers(**flaky)
    wait_until(lambda: len(Worker.all(connection=redis)) == 10, timeout=30, message="both machines' workers")
    build_id = start_build(client, auth, path_id)
    wait_until(
        lambda: _units_running(app, build_id, at_least=2), timeout=60, message="the unit stage under way"
    )

    first.signal_group(signal.SIGKILL)  # the machine that holds the scheduler's locks, all of it
    # delayed retries keep coming: they must not wait the 61 s RQ's lock would take to lapse
    build = wait_for_build(client, auth, build_id, timeout=45)
    _assert_exact(app, build)
    with app.app_context():
        retried = db.session.scalar(
            select(func.count(BuildStep.id)).where(
                BuildStep.build_id == build_id, BuildStep.failed_attempts > 0
            )
        )
    assert retried, "some steps went through a delayed retry"


def _plan(**settings: int) -> list[list[tuple[tuple[str, ...], int]]]:
    config = {"WORKER_PROCESSES": 0, "JOB_CONCURRENCY_DECOMPOSE": 3, "JOB_CONCURRENCY_GENERATE_KU": 5}
    return worker_processes({**config, **settings})


def test_the_default_concurrency_runs_in_one_process_of_nine_threads():
    assert _plan() == [[(ORCHESTRATOR_QUEUES, 1), ((DECOMPOSE_QUEUE,), 3), ((GENERATE_KU_QUEUE,), 5)]]


def test_worker_processes_share_each_stages_threads_evenly():
    assert _plan(WORKER_PROCESSES=2) == [
        [(ORCHESTRATOR_QUEUES, 1), ((DECOMPOSE_QUEUE,), 2), ((GENERATE_KU_QUEUE,), 3)],
        [((DECOMPOSE_QUEUE,), 1), ((GENERATE_KU_QUEUE,), 2)],
    ]
    threads = sum(
        count
        for process in _plan(WORKER_PROCESSES=3, JOB_CONCURRENCY_GENERATE_KU=100)
        for _, count in process
    )
    assert threads == 1 + 3 + 100


def test_a_slot_argument_names_its_queues_and_threads():
    assert parse_slot("build-path,lesson-plans*1") == (("build-path", "lesson-plans"), 1)
    assert parse_slot("generate-ku*40") == (("generate-ku",), 40)
    assert parse_slot(format_slot((("decompose-concept",), 7))) == (("decompose-concept",), 7)
