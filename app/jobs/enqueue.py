"""Enqueue a job under a fixed id at most once while it is alive."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import current_app
from rq.exceptions import DuplicateJobError, NoSuchJobError
from rq.job import Job, JobStatus

from app.jobs.queues import get_queue, get_redis, retry_policy

LIVE_STATES = {JobStatus.QUEUED, JobStatus.STARTED, JobStatus.SCHEDULED, JobStatus.DEFERRED}


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


def enqueue_unique(queue_name: str, func: Callable[..., Any], *args: Any, job_id: str) -> bool:
    """Enqueue `func(*args)` as `job_id` unless a job with that id is alive; True if enqueued.

    RQ's `unique=True` makes the final check atomic; a finished or failed job under the
    same id would block it for its retention period, so it is deleted first.
    """
    job = fetch_job(job_id)
    if job is not None:
        if job.get_status(refresh=False) in LIVE_STATES:
            return False
        job.delete()
    config = current_app.config
    try:
        get_queue(queue_name).enqueue(
            func,
            *args,
            job_id=job_id,
            unique=True,
            retry=retry_policy(config),
            job_timeout=config["JOB_TIMEOUT_S"],
            result_ttl=config["JOB_KEEP_COMPLETED_S"],
            failure_ttl=config["JOB_KEEP_FAILED_S"],
        )
    except DuplicateJobError:
        return False
    return True
