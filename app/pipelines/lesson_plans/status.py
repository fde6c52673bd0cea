"""What a person waiting on lesson plans sees: counts, per-module job state (waiting for the
rate limit included), and an estimate.

Read from the database alone (four queries: modules, lesson totals, latest run, usage), never
from RQ `meta`, so it stays right after a
restart and costs the same however long the workflow's history is.
"""

from __future__ import annotations

import math
from typing import Any

from flask import current_app
from sqlalchemy import func, select

from app.database import isoformat, utcnow
from app.extensions import db
from app.jobs.limiter import rate_limit_per_s
from app.models import GeneratorCall, LessonPlan, LessonPlanRun, Module, RunStatus, Workflow, WorkStatus
from app.models.tracking import IN_FLIGHT
from app.pipelines.usage import usage_of

# The seed's job states, as Bull names them.
JOB_STATE = {
    WorkStatus.QUEUED: "waiting",
    WorkStatus.RUNNING: "active",
    WorkStatus.RETRYING: "delayed",
    WorkStatus.COMPLETED: "completed",
    WorkStatus.FAILED: "failed",
}


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
        return "complete"
    if any(m.status in IN_FLIGHT for m in modules) or (run and run.status == RunStatus.RUNNING):
        return "in_progress"
    if any(m.status == WorkStatus.FAILED for m in modules):
        return "failed"
    return "pending"


def estimated_seconds_left(modules: list[Module]) -> int:
    """Modules left × the mean measured module time (a configured guess before any finished),
    but never less than those modules' calls (one each) ÷ the rate limit's calls per second."""
    config = current_app.config
    durations = [m.duration_ms for m in modules if m.duration_ms]
    per_module_s = (
        sum(durations) / len(durations) / 1000 if durations else config["ESTIMATED_MODULE_MINUTES"] * 60
    )
    left = sum(1 for m in modules if m.status != WorkStatus.COMPLETED)
    rate = rate_limit_per_s(config)
    return math.ceil(max(left * per_module_s, left / rate if rate else 0.0))


def estimated_minutes(modules: list[Module]) -> int:
    return math.ceil(estimated_seconds_left(modules) / 60)


def seconds_to_next_slot(module: Module) -> int | None:
    """For a module waiting for the rate limit: whole seconds until its next slot, at least 1."""
    if not module.waiting_for_rate_limit:
        return None
    return max(1, math.ceil((module.rate_limit_next_slot_at - utcnow()).total_seconds()))


def _job_details(module: Module) -> dict[str, Any]:
    return {
        "jobId": module.job_id,
        "moduleIndex": module.position,
        "state": JOB_STATE.get(WorkStatus(module.status), "waiting"),
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
            "active": states.count("active"),
            "completed": states.count("completed"),
            "failed": states.count("failed"),
            "details": details,
        },
        "status": overall_status(modules, _latest_run(workflow.id)),
        "usage": usage_of(GeneratorCall.workflow_id == workflow.id),
        "waitingForRateLimit": waiting is not None,
        "rateLimitNextSlotAt": isoformat(waiting.rate_limit_next_slot_at) if waiting else None,
    }
    body["estimatedSecondsLeft"] = (
        estimated_seconds_left(modules) if body["status"] == "in_progress" else None
    )
    if failed is not None:
        body["error"] = {
            "moduleIndex": failed.position,
            "message": failed.error,
            "category": failed.error_category,
        }
    return body
