"""What recovery decides for one unit of work in flight (a build's step, a workflow's module),
written once for both pipelines: the database says the work is owed to a job, Redis says
whether that job can still run it."""

from __future__ import annotations

import enum

from flask import current_app
from rq.job import Job

from app.database import utcnow
from app.jobs import claims
from app.jobs.enqueue import LIVE_STATES, StrandedJobs, discard_job
from app.models.statuses import WorkStatus
from app.models.tracking import TrackedWork


class InFlight(enum.Enum):
    ALIVE = "alive"  # a job will run it, or its worker holds the lease
    LOST = "lost"  # no job will ever run it: enqueue it again
    LEASE_LAPSED = "lease lapsed"  # its worker stopped renewing the lease: release it


def judge_in_flight(row: TrackedWork, job: Job | None, stranded: StrandedJobs) -> InFlight:
    """A running row is judged by its lease; a queued or retrying one by its job, which is
    discarded when it is stranded (popped or started by a worker that died before claiming)."""
    if row.status == WorkStatus.RUNNING:
        lapsed = row.lease_expires_at is not None and row.lease_expires_at < utcnow()
        return InFlight.LEASE_LAPSED if lapsed else InFlight.ALIVE
    if job is None or job.get_status(refresh=False) not in LIVE_STATES:
        return InFlight.LOST  # lost with Redis, or ended without the database hearing
    if stranded(job):
        discard_job(job.id)
        return InFlight.LOST
    return InFlight.ALIVE


def release_lapsed(model: type[TrackedWork], row: TrackedWork, job_id: str) -> tuple[bool, bool]:
    """Put back (or, after JOB_MAX_WORKER_LOSSES, fail as worker_lost) a row whose lease lapsed,
    and drop its dead job. Returns (taken, given_up) as claims.release_lost does."""
    taken, given_up = claims.release_lost(model, row, current_app.config["JOB_MAX_WORKER_LOSSES"])
    if taken:
        discard_job(job_id)
    return taken, given_up
