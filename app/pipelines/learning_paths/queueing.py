"""Putting a build's work on Redis: its owed steps and, once none is left to run, its finalize.

Jobs are enqueued by dotted path (the name RQ stores either way), so this module needs none of
the modules that run them, and those can all use it without an import cycle."""

from __future__ import annotations

import logging

from redis.exceptions import RedisError
from sqlalchemy import func, select, update

from app.database import utcnow
from app.extensions import db
from app.jobs.enqueue import UniqueJob, enqueue_many_unique, enqueue_unique
from app.jobs.queues import BUILD_PATH_QUEUE
from app.models import BuildStep, StepType, WorkStatus
from app.models.statuses import FINAL
from app.pipelines.learning_paths.release import release_owed_steps, windowed
from app.pipelines.learning_paths.step_rows import QUEUE_OF_STEP, step_job_id

log = logging.getLogger(__name__)

_STEPS = "app.pipelines.learning_paths.steps"
STEP_JOB_FUNCTIONS: dict[StepType, str] = {
    StepType.CONCEPTS: f"{_STEPS}.generate_concepts",
    StepType.SUB_CONCEPTS: f"{_STEPS}.decompose_concept",
    StepType.KNOWLEDGE_UNITS: f"{_STEPS}.generate_knowledge_units",
}
FINALIZE_JOB_FUNCTION = "app.pipelines.learning_paths.finalize.finalize_build"


def enqueue_steps(steps: list[tuple[int, str]], at_front: bool = False) -> int:
    """Put (step id, type) pairs on their queues, in the order given (RQ queues are FIFO, so
    order is the only priority RQ offers), or at their fronts; returns how many were enqueued.
    One round trip to Redis for them all."""
    return enqueue_many_unique(
        [
            UniqueJob(
                QUEUE_OF_STEP[StepType(kind)],
                STEP_JOB_FUNCTIONS[StepType(kind)],
                (step_id,),
                step_job_id(step_id),
            )
            for step_id, kind in steps
        ],
        at_front=at_front,
    )


def queue_owed_steps(build_id: str) -> int:
    """Release owed (pending) steps (resume, recovery): this build's and every processing
    build's, a window at a time and fairly (release); with RELEASE_WINDOW=0, all at once."""
    if not windowed():
        return _queue_all_owed(build_id)
    return release_owed_steps(enqueue_steps)


def release_freed_places(build_id: str) -> None:
    """A step left Redis: its place in the window goes to whoever's turn it is."""
    if not windowed():
        return
    try:
        release_owed_steps(enqueue_steps)
    except RedisError:
        log.warning("build %s: could not release owed steps; recovery will", build_id)


def _queue_all_owed(build_id: str) -> int:
    """Move the build's pending steps to queued and enqueue them (no window)."""
    owed = db.session.execute(
        select(BuildStep.id, BuildStep.type)
        .where(BuildStep.build_id == build_id, BuildStep.status == WorkStatus.PENDING)
        .order_by(BuildStep.id)
    ).all()
    if not owed:
        return 0
    db.session.execute(
        update(BuildStep)
        .where(BuildStep.id.in_([step_id for step_id, _ in owed]), BuildStep.status == WorkStatus.PENDING)
        .values(status=WorkStatus.QUEUED, queued_at=utcnow())
    )
    db.session.commit()
    return enqueue_steps([(step_id, kind) for step_id, kind in owed])


def finalize_job_id(build_id: str) -> str:
    return f"finalize-{build_id}"


def unfinished_steps(build_id: str) -> int:
    return db.session.execute(
        select(func.count(BuildStep.id)).where(BuildStep.build_id == build_id, BuildStep.status.not_in(FINAL))
    ).scalar_one()


def maybe_finalize(build_id: str) -> bool:
    """Queue finalize once no step of the build is left to run; True if queued."""
    if unfinished_steps(build_id):
        return False
    try:
        return enqueue_unique(
            BUILD_PATH_QUEUE, FINALIZE_JOB_FUNCTION, build_id, job_id=finalize_job_id(build_id)
        )
    except RedisError:
        log.warning("build %s: could not queue finalize; recovery will", build_id)
        return False
