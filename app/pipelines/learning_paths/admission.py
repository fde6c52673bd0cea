"""Admitting a user's waiting builds while they hold fewer than MAX_ACTIVE_BUILDS_PER_USER
running or paused ones; run after a start, a cancel, a retry and when a build finishes."""

from __future__ import annotations

import logging

from flask import current_app
from redis.exceptions import RedisError
from sqlalchemy import func, select, update

from app.database import execute_dml, utcnow
from app.extensions import db
from app.models import Build, BuildStatus, BuildStep, User
from app.pipelines.learning_paths.events import add_event, ring
from app.pipelines.learning_paths.queueing import maybe_finalize, queue_owed_steps
from app.pipelines.learning_paths.step_rows import step_job_id

log = logging.getLogger(__name__)


def lock_user(user_id: int) -> None:
    """Serialize admission per user (PostgreSQL row lock; SQLite has one writer anyway)."""
    db.session.execute(select(User.id).where(User.id == user_id).with_for_update())


def admit_waiting_builds(user_id: int) -> int:
    """Start the user's waiting builds, oldest first, while they hold fewer than
    MAX_ACTIVE_BUILDS_PER_USER running or paused builds. Returns how many started."""
    limit = current_app.config["MAX_ACTIVE_BUILDS_PER_USER"]
    admitted = 0
    while True:
        lock_user(user_id)
        running = db.session.scalar(
            select(func.count(Build.id)).where(
                Build.triggered_by == user_id,
                Build.status.in_([BuildStatus.PROCESSING, BuildStatus.PAUSED]),
            )
        )
        waiting = db.session.scalar(
            select(Build)
            .where(Build.triggered_by == user_id, Build.status == BuildStatus.PENDING)
            .order_by(Build.created_at)
            .limit(1)
        )
        if waiting is None or running >= limit:
            db.session.commit()
            return admitted
        if not _admit(waiting):
            db.session.commit()
            return admitted
        admitted += 1


def _admit(build: Build) -> bool:
    started = execute_dml(
        update(Build)
        .where(Build.id == build.id, Build.status == BuildStatus.PENDING)
        .values(
            status=BuildStatus.PROCESSING,
            started_at=utcnow(),
            current_stage=func.coalesce(Build.current_stage, "concepts"),
            rq_job_id=None,
        )
    ).rowcount
    if not started:
        return False
    root = db.session.scalar(  # the orchestrator, or the step of the piece a scoped build regenerates
        select(BuildStep)
        .where(BuildStep.build_id == build.id, BuildStep.parent_step_id.is_(None))
        .order_by(BuildStep.id)
        .limit(1)
    )
    assert root is not None  # started: the build's steps were inserted with it
    db.session.execute(update(Build).where(Build.id == build.id).values(rq_job_id=step_job_id(root.id)))
    add_event(build.id, "progress", stage="concepts", status="started")
    db.session.commit()
    try:
        queue_owed_steps(build.id)
        maybe_finalize(build.id)  # everything carried over: nothing to run, the build is done
    except RedisError:
        log.warning("build %s: admitted, but Redis is away; recovery will enqueue it", build.id)
    ring(build.id)
    return True
