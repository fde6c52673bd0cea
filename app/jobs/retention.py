"""How long history is kept: RQ keeps finished jobs JOB_KEEP_COMPLETED_S and failed ones
JOB_KEEP_FAILED_S (their keys expire); the database keeps everything until `jobs prune`."""

from __future__ import annotations

from datetime import timedelta

from redis import Redis
from rq import Queue
from sqlalchemy import delete, func, or_, select

from app.database import execute_dml, utcnow
from app.extensions import db
from app.jobs.queues import ALL_QUEUES
from app.models import Build, GeneratorCall, LessonPlanRun
from app.models.statuses import FINAL_BUILD, RunStatus


def prune_history(age: timedelta) -> dict[str, int]:
    """Delete finished builds (steps, events and dead letters go with them: ON DELETE CASCADE),
    finished runs and call records older than `age`."""
    cutoff = utcnow() - age
    old_builds = select(Build.id).where(
        Build.status.in_(FINAL_BUILD),
        func.coalesce(Build.completed_at, Build.created_at) < cutoff,
    )
    removed = {
        "builds": execute_dml(delete(Build).where(Build.id.in_(old_builds))).rowcount,
        "lesson-plan runs": execute_dml(
            delete(LessonPlanRun).where(
                LessonPlanRun.status != RunStatus.RUNNING,
                or_(LessonPlanRun.finished_at < cutoff, LessonPlanRun.finished_at.is_(None)),
                LessonPlanRun.created_at < cutoff,
            )
        ).rowcount,
        "generator calls": execute_dml(
            delete(GeneratorCall).where(GeneratorCall.called_at < cutoff)
        ).rowcount,
    }
    db.session.commit()
    return removed


def clean_registries(redis: Redis) -> None:
    """Drop the ids of expired jobs from RQ's finished and failed registries (RQ only does it
    every 10 minutes), so Redis memory goes back down as soon as the retention period ends."""
    for name in ALL_QUEUES:
        queue = Queue(name, connection=redis)
        queue.finished_job_registry.cleanup()
        queue.failed_job_registry.cleanup()
