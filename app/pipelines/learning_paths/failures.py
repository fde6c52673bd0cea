"""A step's failed attempt: recorded on the step, and, when it was the last attempt, counted
on the build, kept as a dead letter, alerted, and the build finalized if nothing is left."""

from __future__ import annotations

import logging

from sqlalchemy import update

from app.extensions import db
from app.jobs import claims
from app.models import Build, BuildStep, DeadLetter, StepType
from app.pipelines.alerts import queue_alert
from app.pipelines.learning_paths.events import add_event, ring
from app.pipelines.learning_paths.queueing import maybe_finalize
from app.pipelines.learning_paths.step_rows import QUEUE_OF_STEP, step_job_id

log = logging.getLogger(__name__)


def record_step_failure(work: claims.Claim, step: BuildStep, exc: Exception) -> None:
    """Record the attempt; a final failure also counts on the build and goes to dead letters."""
    final = claims.is_final_attempt(exc)
    build_id, step_type, name = step.build_id, step.type, step.entity_name
    if not claims.record_failure(work, exc, final):
        db.session.rollback()
        return
    message = f"{type(exc).__name__}: {exc}"
    letter = None
    if final:
        letter = dead_letter(build_id, step.id, step_type, name, message, claims.failure_category(exc))
    else:
        add_event(build_id, "error", stage=step_type, item=name, error=message, willRetry=True)
    db.session.commit()
    log.warning("build %s step %s (%s) failed, final=%s: %s", build_id, step.id, step_type, final, message)
    if letter is not None:
        after_final_failure(build_id, letter.id)


def dead_letter(
    build_id: str, step_id: int, step_type: str, name: str | None, message: str, category: str
) -> DeadLetter:
    """In the caller's transaction: count the failure on the build and keep a dead letter (returned)."""
    db.session.execute(update(Build).where(Build.id == build_id).values(error_count=Build.error_count + 1))
    letter = DeadLetter(
        build_id=build_id,
        step_id=step_id,
        original_queue=QUEUE_OF_STEP[StepType(step_type)],
        job_id=step_job_id(step_id),
        error=message,
        category=category,
    )
    db.session.add(letter)
    add_event(
        build_id, "error", stage=step_type, item=name, error=message, category=category, willRetry=False
    )
    return letter


def after_final_failure(build_id: str, letter_id: int) -> None:
    ring(build_id)
    queue_alert("dead-letter", letter_id)
    maybe_finalize(build_id)
