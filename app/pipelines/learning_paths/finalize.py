"""Closing a build: once no step is left to run, finalize sets it completed or failed,
exactly once (a compare-and-set), however many steps finish at the same instant."""

from __future__ import annotations

import logging

from sqlalchemy import exists, func, select, update

from app.database import execute_dml, utcnow
from app.extensions import db
from app.models import Build, BuildStatus, BuildStep, WorkStatus
from app.models.statuses import FINAL
from app.pipelines.alerts import queue_alert
from app.pipelines.learning_paths.admission import admit_waiting_builds
from app.pipelines.learning_paths.events import add_event, ring

log = logging.getLogger(__name__)


def finalize_build(build_id: str) -> str:
    """Close the build as completed or failed. The status change is a compare-and-set on a
    processing build with no unfinished step, so it takes effect exactly once."""
    failed = db.session.scalars(
        select(BuildStep)
        .where(BuildStep.build_id == build_id, BuildStep.status == WorkStatus.FAILED)
        .order_by(BuildStep.completed_at)
        .limit(3)
    ).all()
    failed_count = db.session.scalar(
        select(func.count(BuildStep.id)).where(
            BuildStep.build_id == build_id, BuildStep.status == WorkStatus.FAILED
        )
    )
    status = BuildStatus.FAILED if failed_count else BuildStatus.COMPLETED
    error = None
    if failed_count:
        firsts = "; ".join(f"{s.type} '{s.entity_name or 'path'}': {s.error}" for s in failed)
        error = f"{failed_count} step(s) failed: {firsts}"
    nothing_left = ~exists().where(BuildStep.build_id == build_id, BuildStep.status.not_in(FINAL))
    closed = execute_dml(
        update(Build)
        .where(Build.id == build_id, Build.status == BuildStatus.PROCESSING, nothing_left)
        .values(status=status, error=error, completed_at=utcnow(), current_stage=None)
    ).rowcount
    if not closed:
        db.session.rollback()
        return "not finalized: build is not processing, or steps remain"
    add_event(build_id, "completed", status=status, error=error, failedSteps=failed_count)
    db.session.commit()
    ring(build_id)
    if status == BuildStatus.FAILED:
        queue_alert("build-failed", build_id)
    build = db.session.get(Build, build_id)
    if build is not None and build.triggered_by is not None:
        admit_waiting_builds(build.triggered_by)
    log.info("build %s: %s", build_id, status)
    return str(status)
