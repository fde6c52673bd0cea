"""Bring running builds back in line with Redis: what the database owes, Redis must hold.

Run by every worker's recovery sweep and by `flask jobs reconcile`. Idempotent: a second
run finds nothing owed.
"""

from __future__ import annotations

import logging

from rq.job import Job
from sqlalchemy import select, update

from app.database import utcnow
from app.extensions import db
from app.jobs import claims
from app.jobs.enqueue import StrandedJobs, discard_job, fetch_job
from app.jobs.queues import get_redis
from app.models import Build, BuildStatus, BuildStep, WorkStatus
from app.pipelines.in_flight import InFlight, judge_in_flight, release_lapsed
from app.pipelines.learning_paths.admission import admit_waiting_builds
from app.pipelines.learning_paths.failures import after_final_failure, dead_letter
from app.pipelines.learning_paths.queueing import (
    enqueue_steps,
    finalize_job_id,
    maybe_finalize,
    queue_owed_steps,
)
from app.pipelines.learning_paths.step_rows import step_job_id

log = logging.getLogger(__name__)


def reconcile_builds() -> int:
    """One pass over every processing build, and admission of waiting ones."""
    queued = 0
    for build_id in db.session.scalars(select(Build.id).where(Build.status == BuildStatus.PROCESSING)).all():
        queued += reconcile_build(build_id)
    waiting_users = db.session.scalars(
        select(Build.triggered_by).where(Build.status == BuildStatus.PENDING).distinct()
    ).all()
    for user_id in waiting_users:
        if user_id is not None:
            queued += admit_waiting_builds(user_id)
    return queued


def reconcile_build(build_id: str) -> int:
    """Enqueue what this build owes and Redis does not hold; returns how many jobs."""
    queued = queue_owed_steps(build_id)
    unfinished = db.session.scalars(
        select(BuildStep).where(
            BuildStep.build_id == build_id,
            BuildStep.status.in_([WorkStatus.QUEUED, WorkStatus.RETRYING, WorkStatus.RUNNING]),
        )
    ).all()
    if not unfinished:
        finalize = fetch_job(finalize_job_id(build_id))
        if finalize is not None and StrandedJobs(claims.lease_ttl())(finalize):
            log.warning("build %s: finalize was lost with its worker; queueing it again", build_id)
            discard_job(finalize.id)
        return queued + int(maybe_finalize(build_id))
    jobs = Job.fetch_many([step_job_id(step.id) for step in unfinished], connection=get_redis())
    stranded = StrandedJobs(claims.lease_ttl())
    lost: list[tuple[int, str]] = []
    for step, job in zip(unfinished, jobs, strict=True):
        judged = judge_in_flight(step, job, stranded)
        if judged is InFlight.LEASE_LAPSED:
            lost += _release(step)
        elif judged is InFlight.LOST:
            lost.append((step.id, step.type))
    if lost:
        log.warning("build %s: re-enqueueing %s lost step(s)", build_id, len(lost))
    return queued + enqueue_steps(lost)


def _release(step: BuildStep) -> list[tuple[int, str]]:
    """The step's worker stopped renewing its lease: run it again or, after
    JOB_MAX_WORKER_LOSSES, fail it as worker_lost (and dead-letter it)."""
    taken, given_up = release_lapsed(BuildStep, step, step_job_id(step.id))
    if not taken:
        return []
    if given_up:
        db.session.refresh(step)
        letter = dead_letter(
            step.build_id, step.id, step.type, step.entity_name, step.error or "worker lost", "worker_lost"
        )
        db.session.commit()
        after_final_failure(step.build_id, letter.id)
        return []
    db.session.execute(update(BuildStep).where(BuildStep.id == step.id).values(queued_at=utcnow()))
    db.session.commit()
    return [(step.id, step.type)]
