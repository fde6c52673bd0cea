"""enqueue_unique reuses the id of a finished job, also when RQ's record of an earlier run of it
has already expired (a real case: two workers finishing a build's finalize one after another)."""

from __future__ import annotations

import time

from rq.job import JobStatus

from app.jobs.enqueue import enqueue_unique, fetch_job
from app.jobs.queues import get_redis

QUEUE = "dead-letter"


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
