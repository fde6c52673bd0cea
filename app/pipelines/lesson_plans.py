"""The lesson-plan pipeline ("Step 10"): one module at a time, each finished module queues the next.

Chaining: the module job itself enqueues the next module right after its lessons are
committed (a success step written into the job, not an RQ dependency): an RQ dependent whose
parent failed stays deferred forever, and `unique=True` cannot be combined with `depends_on`.
A chain broken by a crash between commit and enqueue is mended by `reconcile_workflow`, which
the worker runs on start and every JOB_RECOVERY_INTERVAL_S.

The database is the truth: a module's row says whether it is owed, running (under a lease),
retrying, completed or failed. Redis only carries the job in flight.
"""

from __future__ import annotations

import logging
import traceback
import uuid
from datetime import datetime, timedelta

from flask import current_app
from redis.exceptions import RedisError
from rq import get_current_job
from rq.job import JobStatus
from rq.timeouts import JobTimeoutException
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from app.database import utcnow
from app.extensions import db
from app.generators import build_generator
from app.generators.errors import GenerationError
from app.generators.schemas import LessonPlanDraft, ModuleBrief
from app.jobs.enqueue import LIVE_STATES, discard_job, enqueue_unique, fetch_job
from app.jobs.lease import keep_lease
from app.jobs.queues import LESSON_PLANS_QUEUE
from app.models import LessonPlan, LessonPlanRun, Module, ModuleStatus, RunStatus, Workflow
from app.models.workflows import IN_FLIGHT

log = logging.getLogger(__name__)


def module_job_id(workflow_id: str, position: int) -> str:
    return f"step10-{workflow_id}-module-{position}"


# --- starting and chaining ---------------------------------------------------------------


def start_generation(workflow: Workflow, user_id: int | None) -> int:
    """Open a run for the workflow (or join the running one) and queue its next module.

    Returns how many jobs this call queued: 0 when one is already queued or running, or when
    every module is done. Safe under concurrent calls: the partial unique index allows one
    running run per workflow, and the module claim is a compare-and-set.
    """
    if all(module.status == ModuleStatus.COMPLETED for module in workflow.modules):
        return 0
    _open_run(workflow.id, user_id)
    return int(enqueue_next_module(workflow.id, resume=True))


def _open_run(workflow_id: str, user_id: int | None) -> None:
    if _running_run(workflow_id) is not None:
        return
    db.session.add(LessonPlanRun(workflow_id=workflow_id, triggered_by=user_id))
    try:
        db.session.commit()
    except IntegrityError:  # another request opened it a moment ago: join that one
        db.session.rollback()


def _running_run(workflow_id: str) -> LessonPlanRun | None:
    return db.session.scalar(
        select(LessonPlanRun).where(
            LessonPlanRun.workflow_id == workflow_id, LessonPlanRun.status == RunStatus.RUNNING
        )
    )


def _next_owed_module(workflow_id: str) -> Module | None:
    return db.session.scalar(
        select(Module)
        .where(Module.workflow_id == workflow_id, Module.status != ModuleStatus.COMPLETED)
        .order_by(Module.position)
        .limit(1)
    )


def enqueue_next_module(workflow_id: str, resume: bool = False) -> bool:
    """Queue the first module not yet completed, if the workflow's run owes it; True if queued.

    `resume` (a user's start) also takes a failed module back; the chain and recovery don't,
    so a module that failed for good stops the run until someone starts it again.
    """
    if _running_run(workflow_id) is None:
        return False
    module = _next_owed_module(workflow_id)
    if module is None:
        _finish_run(workflow_id, RunStatus.COMPLETE)
        return False
    if module.status == ModuleStatus.FAILED and not resume:
        _finish_run(workflow_id, RunStatus.FAILED, module.error)
        return False
    if module.status in IN_FLIGHT:
        return False
    job_id = module_job_id(workflow_id, module.position)
    claimed = db.session.execute(
        update(Module)
        .where(Module.id == module.id, Module.status.in_([ModuleStatus.PENDING, ModuleStatus.FAILED]))
        .values(
            status=ModuleStatus.QUEUED,
            job_id=job_id,
            queued_at=utcnow(),
            progress=0,
            failed_attempts=0,
            worker_losses=0,
            error=None,
            error_category=None,
            traceback=None,
        )
    ).rowcount
    db.session.commit()  # commit, then enqueue: a fast worker must find the row queued
    if not claimed:
        return False
    return _enqueue_module(module.id, job_id)


def _enqueue_module(module_id: int, job_id: str) -> bool:
    return enqueue_unique(LESSON_PLANS_QUEUE, generate_module_lesson_plans, module_id, job_id=job_id)


def _finish_run(workflow_id: str, status: RunStatus, error: str | None = None) -> None:
    db.session.execute(
        update(LessonPlanRun)
        .where(LessonPlanRun.workflow_id == workflow_id, LessonPlanRun.status == RunStatus.RUNNING)
        .values(status=status, error=error, finished_at=utcnow())
    )
    db.session.commit()


def _chain(workflow_id: str) -> None:
    """Queue the next module; with Redis away, leave it to the recovery sweep."""
    try:
        enqueue_next_module(workflow_id)
    except RedisError:
        log.warning("workflow %s: could not queue the next module; recovery will", workflow_id)


# --- the module job ----------------------------------------------------------------------


def generate_module_lesson_plans(module_id: int) -> str:
    """Generate one module's lesson plans, replace any earlier ones, and queue the next module."""
    claim = _claim_module(module_id)
    module = db.session.get(Module, module_id)
    if module is None:
        return "module deleted"
    if claim is None:  # a duplicate delivery, or a stale job: do nothing twice
        if module.status == ModuleStatus.COMPLETED:
            _chain(module.workflow_id)
        return f"skipped: module is {module.status}"
    token, started_at = claim
    workflow_id = module.workflow_id
    log.info("workflow %s module %s: attempt %s started", workflow_id, module.position, module.attempts)
    try:
        drafts = _generate(module, token)
    except Exception as exc:
        _record_failure(module_id, token, exc)
        raise
    if _store_lesson_plans(module_id, token, drafts, started_at):
        log.info("workflow %s module %s: %s lessons stored", workflow_id, module.position, len(drafts))
        _chain(workflow_id)
    return f"{len(drafts)} lesson plans"


def _claim_module(module_id: int) -> tuple[str, datetime] | None:
    """Take the module for this attempt, or None if it is done or held by a live attempt."""
    token, now = uuid.uuid4().hex, utcnow()
    claimable = Module.status.in_([ModuleStatus.QUEUED, ModuleStatus.RETRYING]) | (
        (Module.status == ModuleStatus.RUNNING) & (Module.lease_expires_at < now)
    )
    claimed = db.session.execute(
        update(Module)
        .where(Module.id == module_id, claimable)
        .values(
            status=ModuleStatus.RUNNING,
            claim_token=token,
            attempts=Module.attempts + 1,
            progress=0,
            started_at=now,
            lease_expires_at=now + _lease_ttl(),
        )
    ).rowcount
    db.session.commit()
    return (token, now) if claimed else None


def _lease_ttl() -> timedelta:
    return timedelta(seconds=current_app.config["JOB_LEASE_TTL_S"])


def _generate(module: Module, token: str) -> list[LessonPlanDraft]:
    workflow = module.workflow
    brief = ModuleBrief(
        workflow_title=workflow.title,
        topic=workflow.topic,
        audience=workflow.audience,
        module_title=module.title,
        module_index=module.position,
        total_modules=len(workflow.modules),
        contact_hours=module.contact_hours,
    )
    engine, ttl = db.engine, _lease_ttl()
    guard = (Module.id == module.id) & (Module.claim_token == token)

    def renew(progress: int | None = None) -> bool:
        values: dict[str, object] = {"lease_expires_at": utcnow() + ttl}
        if progress is not None:
            values["progress"] = progress
        with engine.begin() as conn:
            return conn.execute(update(Module).where(guard).values(**values)).rowcount == 1

    generator = build_generator(current_app.config)
    with keep_lease(renew, every_s=ttl.total_seconds() / 3):
        return generator.lesson_plans(brief, progress=lambda percent: renew(min(percent, 99)))


def _store_lesson_plans(
    module_id: int, token: str, drafts: list[LessonPlanDraft], started_at: datetime
) -> bool:
    """Replace the module's lessons and mark it completed, in one transaction, if still ours."""
    now = utcnow()
    completed = db.session.execute(
        update(Module)
        .where(
            Module.id == module_id,
            Module.claim_token == token,
            Module.status == ModuleStatus.RUNNING,
        )
        .values(
            status=ModuleStatus.COMPLETED,
            progress=100,
            completed_at=now,
            duration_ms=int((now - started_at).total_seconds() * 1000),
            lease_expires_at=None,
            error=None,
            error_category=None,
            traceback=None,
        )
    ).rowcount
    if not completed:  # a newer attempt took the module over: its result wins
        db.session.rollback()
        return False
    db.session.query(LessonPlan).filter_by(module_id=module_id).delete()
    db.session.add_all(
        LessonPlan(
            module_id=module_id,
            order=order,
            title=draft.title,
            objectives=draft.objectives,
            activities=[activity.model_dump() for activity in draft.activities],
            assessment=draft.assessment,
            duration_minutes=draft.duration_minutes,
        )
        for order, draft in enumerate(drafts)
    )
    db.session.commit()
    return True


def failure_category(exc: BaseException) -> str:
    if isinstance(exc, JobTimeoutException):
        return "timeout"
    if isinstance(exc, GenerationError):
        return exc.category
    return "error"


def _record_failure(module_id: int, token: str, exc: Exception) -> None:
    """Write the attempt's failure before RQ sees the exception, so both agree.

    The last attempt (or a permanent error) fails the module and stops the run there.
    """
    db.session.rollback()
    rq_job = get_current_job()
    permanent = isinstance(exc, GenerationError) and not exc.transient
    if permanent and rq_job is not None:
        rq_job.retries_left = 0  # RQ reads this object when it decides on a retry
    final = permanent or rq_job is None or not rq_job.should_retry
    message = f"{type(exc).__name__}: {exc}"
    recorded = db.session.execute(
        update(Module)
        .where(Module.id == module_id, Module.claim_token == token)
        .values(
            status=ModuleStatus.FAILED if final else ModuleStatus.RETRYING,
            failed_attempts=Module.failed_attempts + 1,
            error=message,
            error_category=failure_category(exc),
            traceback=traceback.format_exc(),
            lease_expires_at=None,
            completed_at=utcnow() if final else None,
        )
    ).rowcount
    module = db.session.get(Module, module_id)
    if recorded and final and module is not None:
        db.session.execute(
            update(LessonPlanRun)
            .where(
                LessonPlanRun.workflow_id == module.workflow_id,
                LessonPlanRun.status == RunStatus.RUNNING,
            )
            .values(
                status=RunStatus.FAILED,
                error=f"module {module.position} ({module.title}): {message}",
                finished_at=utcnow(),
            )
        )
    db.session.commit()
    log.warning("module %s: attempt failed (%s), final=%s", module_id, message, final)


# --- recovery ----------------------------------------------------------------------------


def reconcile_lesson_plan_runs() -> int:
    """Bring every running run back in line with Redis; returns how many jobs were queued."""
    workflow_ids = db.session.scalars(
        select(LessonPlanRun.workflow_id).where(LessonPlanRun.status == RunStatus.RUNNING)
    ).all()
    return sum(reconcile_workflow(workflow_id) for workflow_id in workflow_ids)


def reconcile_workflow(workflow_id: str) -> int:
    """Queue what the run owes and Redis does not hold: a lost job, a lapsed lease, a broken chain."""
    module = _next_owed_module(workflow_id)
    if module is None or module.status in (ModuleStatus.PENDING, ModuleStatus.FAILED):
        return int(enqueue_next_module(workflow_id))
    job_id = module.job_id or module_job_id(workflow_id, module.position)
    if module.status == ModuleStatus.RUNNING:
        if module.lease_expires_at and module.lease_expires_at < utcnow():
            return int(_requeue_lost_module(module, job_id))
        return 0
    job = fetch_job(job_id)
    status = job.get_status(refresh=False) if job else None
    if status not in LIVE_STATES:  # lost with Redis, or ended without the database hearing
        return int(_enqueue_module(module.id, job_id))
    if status == JobStatus.STARTED and job is not None and job.started_at:
        # Taken by a worker that died before it could claim the module.
        started = job.started_at.replace(tzinfo=None)
        if started < utcnow() - _lease_ttl():
            discard_job(job_id)
            return int(_enqueue_module(module.id, job_id))
    return 0


def _requeue_lost_module(module: Module, job_id: str) -> bool:
    """The module's worker stopped renewing its lease: run it again, or fail it if it keeps
    killing workers (JOB_MAX_WORKER_LOSSES)."""
    losses = module.worker_losses + 1
    give_up = losses >= current_app.config["JOB_MAX_WORKER_LOSSES"]
    lost = (
        (Module.id == module.id)
        & (Module.status == ModuleStatus.RUNNING)
        & (Module.claim_token == module.claim_token)
    )
    values: dict[str, object] = {"worker_losses": losses, "claim_token": None, "lease_expires_at": None}
    if give_up:
        message = f"worker lost {losses} times while generating this module"
        values |= {
            "status": ModuleStatus.FAILED,
            "error": message,
            "error_category": "worker_lost",
            "completed_at": utcnow(),
        }
    else:
        values |= {"status": ModuleStatus.QUEUED, "queued_at": utcnow()}
    taken = db.session.execute(update(Module).where(lost).values(**values)).rowcount
    db.session.commit()
    if not taken:
        return False
    log.warning("workflow %s module %s: worker lost (%s so far)", module.workflow_id, module.position, losses)
    discard_job(job_id)
    if give_up:
        _finish_run(module.workflow_id, RunStatus.FAILED, values["error"])  # type: ignore[arg-type]
        return False
    return _enqueue_module(module.id, job_id)
