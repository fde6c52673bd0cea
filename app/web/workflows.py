"""A workflow's page: its modules, the lesson-plan progress, and the plans as they arrive."""

from __future__ import annotations

import math
from functools import partial
from typing import Any

from flask import redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from htmx_flask import request  # flask.request, typed with the .htmx that the Htmx extension adds
from sqlalchemy import select
from sqlalchemy.orm import selectinload
from werkzeug.exceptions import NotFound

from app.access import owned_workflow
from app.extensions import db
from app.inputs import bounded_int
from app.models import Module, Workflow, WorkStatus
from app.models.statuses import IN_FLIGHT, WorkflowStatus
from app.pipelines.lesson_plans import events as run_events
from app.pipelines.lesson_plans import run as lesson_plan_run
from app.pipelines.lesson_plans.status import generation_status, seconds_to_next_slot
from app.web import bp, page_or_fragment, swap_whole
from app.web.refusals import PAGE_REFUSALS, QUEUE_DOWN_FOR_RUN, page_refusal


def _progress(workflow: Workflow) -> dict[str, Any]:
    status = generation_status(workflow)
    modules = workflow.modules
    running = next((m for m in modules if m.status in IN_FLIGHT), None)
    done = status["modulesGenerated"]
    share = (running.progress / 100) if running else 0
    return {
        "status": status,
        "overall": round(100 * (done + share) / len(modules)) if modules else 0,
        "current": running,
        "next_slot_s": seconds_to_next_slot(running) if running else None,
        "eta_minutes": math.ceil(status["estimatedSecondsLeft"] / 60)
        if status["estimatedSecondsLeft"] is not None
        else None,
        "live": status["status"] == WorkflowStatus.IN_PROGRESS,
        "export_ready": status["modulesGenerated"] > 0,
        "export_reason": "Nothing to download yet: the lesson plans are not generated.",
        "export_url": url_for("web.export_workflow", workflow_id=workflow.id),
    }


def _last_run_event_id(workflow: Workflow) -> int:
    """Where the page's stream starts: after the events of the running run it already shows."""
    run_id = run_events.running_run_id(workflow.id)
    return run_events.last_event_id(run_id) if run_id else 0


MAX_SHOWN_CHARS = 2000  # far more than 50 modules' positions; longer is not from our page


def _shown_positions() -> set[int] | None:
    """The modules whose lesson plans the polling page already shows (None: it did not say)."""
    raw = request.args.get("shown")
    if raw is None or len(raw) > MAX_SHOWN_CHARS:
        return None
    return {int(part) for part in raw.split(",") if part.isascii() and part.isdigit()}


def _changed_lessons(workflow: Workflow, shown: set[int] | None) -> list[Module]:
    """Modules completed since the page last showed them (their plans loaded in one query), and
    modules it shows that are no longer completed (a regeneration: their place is emptied)."""
    if shown is None:
        return []
    completed = {m.position for m in workflow.modules if m.status == WorkStatus.COMPLETED}
    changed = [m for m in workflow.modules if (m.position in completed) != (m.position in shown)]
    new_ids = [m.id for m in changed if m.position in completed]
    if new_ids:
        db.session.scalars(
            select(Module)
            .where(Module.id.in_(new_ids))
            .options(selectinload(Module.lesson_plans))
            .execution_options(populate_existing=True)
        ).all()
    return changed


def _render(
    workflow_id: str,
    notice: str | None = None,
    status: int = 200,
    fragment: str = "web/_workflow_progress.html",
) -> tuple[str, int]:
    """The page with every lesson plan, or (HTMX) the progress region and only the plans that
    changed since the last poll: a poll's cost does not grow with the plans already shown."""
    workflow = owned_workflow(workflow_id, current_user, with_lessons=not request.htmx)
    shown = _shown_positions() if request.htmx else None
    progress = _progress(workflow)
    body = page_or_fragment(
        "web/workflow.html",
        fragment,
        workflow=workflow,
        notice=notice,
        shown=[m.position for m in workflow.modules if m.status == WorkStatus.COMPLETED],
        changed_lessons=_changed_lessons(workflow, shown),
        # The page shows download links iff it shows plans: swap them only when that changes.
        refresh_downloads=shown is not None and bool(shown) != progress["export_ready"],
        last_event_id=partial(_last_run_event_id, workflow),  # asked only where a stream starts
        **progress,
    )
    return body, status


@bp.get("/workflows/<workflow_id>")
def workflow(workflow_id: str) -> ResponseReturnValue:
    """Show a workflow and its lesson-plan progress (the live region alone for HTMX)."""
    return _render(workflow_id)


def _requested_module(workflow: Workflow, raw: str | None) -> Module | None:
    """The module at position `raw` (a 404 if there is none); None: every module."""
    if raw is None:
        return None
    index = bounded_int(raw, high=len(workflow.modules) - 1)
    if index is None:
        raise NotFound(f"No module {raw!r} in this workflow.")
    return workflow.modules[index]


@bp.get("/workflows/<workflow_id>/regenerate")
def confirm_regenerate_lessons(workflow_id: str) -> ResponseReturnValue:
    """Ask before regenerating lesson plans: the existing ones are replaced."""
    workflow = owned_workflow(workflow_id, current_user)
    module = _requested_module(workflow, request.args.get("module"))
    return render_template("web/confirm_regenerate_lessons.html", workflow=workflow, module=module)


@bp.post("/workflows/<workflow_id>/regenerate")
def regenerate_lessons(workflow_id: str) -> ResponseReturnValue:
    """Regenerate every module's lesson plans afresh, or one module's."""
    workflow = owned_workflow(workflow_id, current_user)
    module = _requested_module(workflow, request.form.get("module"))
    try:
        if module is None:
            lesson_plan_run.start_generation(workflow, current_user.id, fresh=True)
        else:
            lesson_plan_run.regenerate_module(module, current_user.id)
    except PAGE_REFUSALS as exc:
        return _render(workflow_id, *page_refusal(exc, regenerate=True, queue_down=QUEUE_DOWN_FOR_RUN))
    return redirect(url_for("web.workflow", workflow_id=workflow_id))


@bp.post("/workflows/<workflow_id>/generate")
def generate(workflow_id: str) -> ResponseReturnValue:
    """Start lesson-plan generation, then show the progress (which polls again)."""
    workflow = owned_workflow(workflow_id, current_user)
    try:
        lesson_plan_run.start_generation(workflow, current_user.id)
    except PAGE_REFUSALS as exc:
        return _render(workflow_id, *page_refusal(exc, queue_down=QUEUE_DOWN_FOR_RUN))
    if request.htmx:
        return (*_render(workflow_id, fragment="web/_run_push.html"), swap_whole("#run-push"))
    return redirect(url_for("web.workflow", workflow_id=workflow_id))
