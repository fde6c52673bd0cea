"""What a person waiting on lesson plans sees: counts, per-module job state (waiting for the
rate limit included), and an estimate.

Read from the database alone (four queries: modules, lesson totals, latest run, usage), never
from RQ `meta`, so it stays right after a
restart and costs the same however long the workflow's history is.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from flask import current_app
from sqlalchemy import func, select

from app.database import isoformat, utcnow
from app.extensions import db
from app.jobs.limiter import rate_limit_per_s
from app.models import GeneratorCall, LessonPlan, LessonPlanRun, Module, RunStatus, Workflow, WorkStatus
from app.models.statuses import IN_FLIGHT, WorkflowStatus
from app.pipelines.usage import usage_of
from app.seed_names import bull_state


def _latest_run(workflow_id: str) -> LessonPlanRun | None:
    return db.session.scalar(
        select(LessonPlanRun)
        .where(LessonPlanRun.workflow_id == workflow_id)
        .order_by(LessonPlanRun.created_at.desc())
        .limit(1)
    )


def _lesson_totals(workflow_id: str) -> tuple[int, int]:
    count, minutes = db.session.execute(
        select(func.count(LessonPlan.id), func.coalesce(func.sum(LessonPlan.duration_minutes), 0))
        .join(Module, LessonPlan.module_id == Module.id)
        .where(Module.workflow_id == workflow_id)
    ).one()
    return int(count), int(minutes)


def overall_status(modules: list[Module], run: LessonPlanRun | None) -> str:
    if modules and all(m.status == WorkStatus.COMPLETED for m in modules):
        return WorkflowStatus.COMPLETE
    if any(m.status in IN_FLIGHT for m in modules) or (run and run.status == RunStatus.RUNNING):
        return WorkflowStatus.IN_PROGRESS
    if any(m.status == WorkStatus.FAILED for m in modules):
        return WorkflowStatus.FAILED
    return WorkflowStatus.PENDING


RECENT_MODULES = 20  # with nothing measured in this workflow, the mean of this many recent modules


def _recent_module_s() -> float | None:
    """The mean time of the last modules completed anywhere (one query), for a first run."""
    recent = (
        select(Module.duration_ms)
        .where(Module.status == WorkStatus.COMPLETED, Module.duration_ms.is_not(None))
        .order_by(Module.completed_at.desc())
        .limit(RECENT_MODULES)
        .subquery()
    )
    mean_ms = db.session.scalar(select(func.avg(recent.c.duration_ms)))
    return float(mean_ms) / 1000 if mean_ms else None


def _module_s(modules: list[Module], since: datetime | None) -> float:
    """The time a module takes, as measured: this run's completed modules (those completed since
    it started), else this workflow's earlier ones, else recent modules anywhere; the configured
    guess only when nothing was ever measured."""
    completed = [m for m in modules if m.status == WorkStatus.COMPLETED and m.duration_ms]
    this_run = [m for m in completed if since is not None and m.completed_at and m.completed_at >= since]
    for measured in (this_run, completed):
        if measured:
            return sum(m.duration_ms or 0 for m in measured) / len(measured) / 1000
    recent = _recent_module_s()
    return recent if recent is not None else current_app.config["ESTIMATED_MODULE_MINUTES"] * 60


def estimated_seconds_left(modules: list[Module], since: datetime | None = None) -> int:
    """Modules left × the measured module time (see `_module_s`; `since` is when the run started),
    less what the running module has already spent, but never less than those modules' calls
    (one each) ÷ the rate limit's calls per second."""
    per_module_s = _module_s(modules, since)
    left = sum(1 for m in modules if m.status != WorkStatus.COMPLETED)
    now = utcnow()
    spent_s = sum(
        min(per_module_s, (now - m.started_at).total_seconds())
        for m in modules
        if m.status == WorkStatus.RUNNING and m.started_at
    )
    rate = rate_limit_per_s(current_app.config)
    return math.ceil(max(left * per_module_s - spent_s, left / rate if rate else 0.0, 0.0))


def estimated_minutes(modules: list[Module], since: datetime | None = None) -> int:
    return math.ceil(estimated_seconds_left(modules, since) / 60)


def seconds_to_next_slot(module: Module) -> int | None:
    """For a module waiting for the rate limit: whole seconds until its next slot, at least 1."""
    next_slot_at = module.rate_limit_next_slot_at
    if not module.waiting_for_rate_limit or next_slot_at is None:  # the one implies the other
        return None
    return max(1, math.ceil((next_slot_at - utcnow()).total_seconds()))


def _job_details(module: Module) -> dict[str, Any]:
    return {
        "jobId": module.job_id,
        "moduleIndex": module.position,
        "state": bull_state(module.status),
        "progress": module.progress,
        "attemptsMade": module.failed_attempts,
        "waitingForRateLimit": module.waiting_for_rate_limit,
        "rateLimitNextSlotAt": isoformat(module.rate_limit_next_slot_at)
        if module.waiting_for_rate_limit
        else None,
        "waitMs": module.rate_limit_waited_ms,
    }


def generation_status(workflow: Workflow) -> dict[str, Any]:
    modules = workflow.modules
    run = _latest_run(workflow.id)
    lessons, minutes = _lesson_totals(workflow.id)
    details = [_job_details(m) for m in modules if m.job_id]
    waiting = next((m for m in modules if m.waiting_for_rate_limit), None)
    states = [d["state"] for d in details]
    done = sum(1 for m in modules if m.status == WorkStatus.COMPLETED)
    failed = next((m for m in modules if m.status == WorkStatus.FAILED), None)
    body: dict[str, Any] = {
        "workflowId": workflow.id,
        "modulesGenerated": done,
        "totalModules": len(modules),
        "allComplete": done == len(modules),
        "totalLessons": lessons,
        "totalContactHours": round(minutes / 60, 2),
        "jobs": {
            "total": len(details),
            "active": states.count(bull_state(WorkStatus.RUNNING)),
            "completed": states.count(bull_state(WorkStatus.COMPLETED)),
            "failed": states.count(bull_state(WorkStatus.FAILED)),
            "details": details,
        },
        "status": overall_status(modules, run),
        "usage": usage_of(GeneratorCall.workflow_id == workflow.id),
        "waitingForRateLimit": waiting is not None,
        "rateLimitNextSlotAt": isoformat(waiting.rate_limit_next_slot_at) if waiting else None,
    }
    body["estimatedSecondsLeft"] = (
        estimated_seconds_left(modules, run.created_at if run else None)
        if body["status"] == WorkflowStatus.IN_PROGRESS
        else None
    )
    if failed is not None:
        body["error"] = {
            "moduleIndex": failed.position,
            "message": failed.error,
            "category": failed.error_category,
        }
    return body
