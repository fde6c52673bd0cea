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

from redis.exceptions import RedisError
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from app.database import execute_dml, utcnow
from app.extensions import db
from app.generators.schemas import LessonPlanDraft, ModuleBrief
from app.jobs import claims
from app.jobs.enqueue import StrandedJobs, enqueue_unique, fetch_job
from app.jobs.queues import LESSON_PLANS_QUEUE
from app.models import LessonPlan, LessonPlanRun, Module, RunStatus, Workflow, WorkStatus
from app.models.statuses import IN_FLIGHT
from app.pipelines.generation import generate_under_lease
from app.pipelines.in_flight import InFlight, judge_in_flight, release_lapsed
from app.pipelines.lesson_plans.events import add_run_event, module_event
from app.pipelines.step_lifecycle import StepLifecycle

log = logging.getLogger(__name__)


def module_job_id(workflow_id: str, position: int) -> str:
    return f"step10-{workflow_id}-module-{position}"


# --- starting and chaining ---------------------------------------------------------------


def start_generation(workflow: Workflow, user_id: int | None, fresh: bool = False) -> int:
    """Open a run for the workflow (or join the running one) and queue its next module.

    Returns how many jobs this call queued: 0 when one is already queued or running, or when
    every module is done. Safe under concurrent calls: the partial unique index allows one
    running run per workflow, and the module claim is a compare-and-set.
    """
    if fresh and _running_run(workflow.id) is None:
        db.session.execute(  # every module again, asking the model afresh
            update(Module)
            .where(
                Module.workflow_id == workflow.id,
                Module.status.in_([WorkStatus.COMPLETED, WorkStatus.FAILED]),
            )
            .values(status=WorkStatus.PENDING, progress=0)
        )
        db.session.commit()
        db.session.expire_all()
    if all(module.status == WorkStatus.COMPLETED for module in workflow.modules):
        return 0
    _open_run(workflow.id, user_id, fresh)
    return int(enqueue_next_module(workflow.id, resume=True))


def _open_run(workflow_id: str, user_id: int | None, fresh: bool) -> None:
    if _running_run(workflow_id) is not None:
        return
    db.session.add(LessonPlanRun(workflow_id=workflow_id, triggered_by=user_id, force_fresh=fresh))
    try:
        db.session.commit()
    except IntegrityError:  # another request opened it a moment ago: join that one
        db.session.rollback()


class GenerationInProgress(Exception):
    """The workflow has a running run: one module cannot be regenerated beside it."""


def regenerate_module(module: Module, user_id: int | None) -> bool:
    """Open a run that asks the model again for this one module's lesson plans, replacing
    them when it is done; the other modules are left as they are. True if its job was queued.

    Raises GenerationInProgress when a run is already running (the partial unique index
    decides between concurrent requests, and the module is reset only by the winner).
    """
    if _running_run(module.workflow_id) is not None or module.status in IN_FLIGHT:
        raise GenerationInProgress("Lesson-plan generation is already running for this workflow.")
    db.session.add(
        LessonPlanRun(
            workflow_id=module.workflow_id, triggered_by=user_id, force_fresh=True, scope_module_id=module.id
        )
    )
    module.status, module.progress = WorkStatus.PENDING, 0
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise GenerationInProgress("Lesson-plan generation is already running for this workflow.") from None
    return enqueue_next_module(module.workflow_id, resume=True)


def _running_run(workflow_id: str) -> LessonPlanRun | None:
    return db.session.scalar(
        select(LessonPlanRun).where(
            LessonPlanRun.workflow_id == workflow_id, LessonPlanRun.status == RunStatus.RUNNING
        )
    )


def _next_owed_module(workflow_id: str) -> Module | None:
    """The first module not completed, among those the running run covers (a run of one
    module covers that module only)."""
    query = (
        select(Module)
        .where(Module.workflow_id == workflow_id, Module.status != WorkStatus.COMPLETED)
        .order_by(Module.position)
        .limit(1)
    )
    scope = db.session.scalar(
        select(LessonPlanRun.scope_module_id).where(
            LessonPlanRun.workflow_id == workflow_id, LessonPlanRun.status == RunStatus.RUNNING
        )
    )
    if scope is not None:
        query = query.where(Module.id == scope)
    return db.session.scalar(query)


def enqueue_next_module(workflow_id: str, resume: bool = False) -> bool:
    """Queue the first module not yet completed, if the workflow's run owes it; True if queued.

    `resume` (a user's start) also takes a failed module back; the chain and recovery don't,
    so a module that failed for good stops the run until someone starts it again.
    """
    if _running_run(workflow_id) is None:
        return False
    module = _next_owed_module(workflow_id)
    if module is None:
        _end_run(workflow_id, RunStatus.COMPLETE)
        db.session.commit()
        return False
    if module.status == WorkStatus.FAILED and not resume:
        _end_run(workflow_id, RunStatus.FAILED, module.error)
        db.session.commit()
        return False
    if module.status in IN_FLIGHT:
        return False
    job_id = module_job_id(workflow_id, module.position)
    claimed = execute_dml(
        update(Module)
        .where(Module.id == module.id, Module.status.in_([WorkStatus.PENDING, WorkStatus.FAILED]))
        .values(
            status=WorkStatus.QUEUED,
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


def _end_run(workflow_id: str, status: RunStatus, error: str | None = None) -> None:
    """In the caller's transaction: the workflow's running run ends as `status`."""
    add_run_event(workflow_id, "completed", status=status, error=error)
    db.session.execute(
        update(LessonPlanRun)
        .where(LessonPlanRun.workflow_id == workflow_id, LessonPlanRun.status == RunStatus.RUNNING)
        .values(status=status, error=error, finished_at=utcnow())
    )


def _chain(workflow_id: str) -> None:
    """Queue the next module; with Redis away, leave it to the recovery sweep."""
    try:
        enqueue_next_module(workflow_id)
    except RedisError:
        log.warning("workflow %s: could not queue the next module; recovery will", workflow_id)


# --- the module job ----------------------------------------------------------------------


def generate_module_lesson_plans(module_id: int) -> str:
    """Generate one module's lesson plans, replace any earlier ones, and queue the next module."""
    return MODULE.run(module_id, _produce_lesson_plans)


def _produce_lesson_plans(module: Module, work: claims.Claim) -> list[LessonPlanDraft]:
    module_event(module, "progress", status=WorkStatus.RUNNING, attempt=module.attempts)
    db.session.commit()
    brief, regeneration = _module_brief(module), _regeneration(module.workflow_id)
    return generate_under_lease(
        work,
        "lesson-plans",
        lambda generator, progress: generator.lesson_plans(brief, progress=progress),
        regeneration=regeneration,
        workflow_id=module.workflow_id,
        module_id=module.id,
    )


def _not_claimed(module: Module) -> str:
    """A duplicate delivery, or a stale job: do nothing twice (but mend a broken chain)."""
    if module.status == WorkStatus.COMPLETED:
        _chain(module.workflow_id)
    return f"skipped: module is {module.status}"


def _finish_module(module: Module, work: claims.Claim, drafts: list[LessonPlanDraft]) -> str:
    """Store the drafts under the claim (a stale attempt stores nothing), then chain."""
    workflow_id, position = module.workflow_id, module.position
    if _store_lesson_plans(work, drafts):
        log.info("workflow %s module %s: %s lessons stored", workflow_id, position, len(drafts))
        _chain(workflow_id)
    return f"{len(drafts)} lesson plans"


def _module_brief(module: Module) -> ModuleBrief:
    workflow = module.workflow
    return ModuleBrief(
        workflow_title=workflow.title,
        topic=workflow.topic,
        audience=workflow.audience,
        module_title=module.title,
        module_index=module.position,
        total_modules=len(workflow.modules),
        contact_hours=module.contact_hours,
    )


def _regeneration(workflow_id: str) -> int:
    """0 unless the running run asked for a fresh generation (past the memo); then which fresh
    run of the workflow it is, counting from 1, so the next regenerate differs from this one."""
    run = db.session.execute(
        select(LessonPlanRun.created_at, LessonPlanRun.force_fresh).where(
            LessonPlanRun.workflow_id == workflow_id, LessonPlanRun.status == RunStatus.RUNNING
        )
    ).first()
    if run is None or not run.force_fresh:
        return 0
    earlier = (
        (LessonPlanRun.workflow_id == workflow_id)
        & LessonPlanRun.force_fresh
        & (LessonPlanRun.created_at <= run.created_at)
    )
    return db.session.scalar(select(func.count(LessonPlanRun.id)).where(earlier)) or 1


def _store_lesson_plans(work: claims.Claim, drafts: list[LessonPlanDraft]) -> bool:
    """Replace the module's lessons and mark it completed, in one transaction, if still ours."""
    if not claims.mark_completed(work):  # a newer attempt took the module over: its result wins
        db.session.rollback()
        return False
    db.session.query(LessonPlan).filter_by(module_id=work.row_id).delete()
    db.session.add_all(
        LessonPlan(
            module_id=work.row_id,
            order=order,
            title=draft.title,
            objectives=draft.objectives,
            activities=[activity.model_dump() for activity in draft.activities],
            assessment=draft.assessment,
            duration_minutes=draft.duration_minutes,
        )
        for order, draft in enumerate(drafts)
    )
    module_event(db.session.get_one(Module, work.row_id), "module_completed", lessons=len(drafts))
    db.session.commit()
    return True


def _record_failure(work: claims.Claim, exc: Exception) -> None:
    """Write the attempt's failure before RQ sees the exception, so both agree.

    The last attempt (or a permanent error) fails the module and stops the run there.
    """
    final = claims.is_final_attempt(exc)
    recorded = claims.record_failure(work, exc, final)
    module = db.session.get(Module, work.row_id)
    if recorded and module is not None:
        module_event(module, "error", message=module.error, category=module.error_category, final=final)
    if recorded and final and module is not None:
        failure = f"Module {module.position + 1} ({module.title}): {module.error}"  # numbered for people
        _end_run(module.workflow_id, RunStatus.FAILED, failure)
    db.session.commit()
    log.warning("module %s: attempt failed (%s), final=%s", work.row_id, exc, final)


MODULE: StepLifecycle[Module, list[LessonPlanDraft]] = StepLifecycle(
    model=Module,
    missing="module deleted",
    label=lambda module: f"workflow {module.workflow_id} module {module.position}",
    log_context=lambda module: {
        "workflow": module.workflow_id,
        "module": module.position,
        "attempt": module.attempts,
    },
    not_claimed=_not_claimed,
    record_failure=lambda work, _module, exc: _record_failure(work, exc),
    finish=_finish_module,
    announce=True,
)


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
    if module is None or module.status in (WorkStatus.PENDING, WorkStatus.FAILED):
        return int(enqueue_next_module(workflow_id))
    job_id = module.job_id or module_job_id(workflow_id, module.position)
    job = None if module.status == WorkStatus.RUNNING else fetch_job(job_id)
    judged = judge_in_flight(module, job, StrandedJobs(claims.lease_ttl()))
    if judged is InFlight.LEASE_LAPSED:
        return int(_requeue_lost_module(module, job_id))
    if judged is InFlight.LOST:
        return int(_enqueue_module(module.id, job_id))
    return 0


def _requeue_lost_module(module: Module, job_id: str) -> bool:
    """The module's worker stopped renewing its lease: run it again, or fail it if it keeps
    killing workers (JOB_MAX_WORKER_LOSSES)."""
    taken, given_up = release_lapsed(Module, module, job_id)
    if not taken:
        return False
    log.warning("workflow %s module %s: worker lost", module.workflow_id, module.position)
    if given_up:
        failure = f"Module {module.position + 1} ({module.title}): worker lost"  # numbered for people
        _end_run(module.workflow_id, RunStatus.FAILED, failure)
        db.session.commit()
        return False
    return _enqueue_module(module.id, job_id)
