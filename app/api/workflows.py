"""Workflows and their lesson-plan generation (the seed's Step 10 endpoints)."""

from __future__ import annotations

from typing import Any

from flask import g, jsonify
from flask.typing import ResponseReturnValue

from app.access import owner_filter
from app.api import bp
from app.api.loaders import load_workflow
from app.api.schemas import (
    Step10StartIn,
    WorkflowIn,
    parse_body,
    parse_optional_body,
    query_choice,
    query_page,
)
from app.database import isoformat
from app.errors import ApiError
from app.extensions import db
from app.models import Module, Workflow, WorkStatus
from app.pipelines.lesson_plans import run as lesson_plan_run
from app.pipelines.lesson_plans.status import estimated_minutes, generation_status
from app.pipelines.listings import WORKFLOW_STATUSES, WorkflowRow, workflow_page


@bp.post("/v3/workflows")
def create_workflow() -> ResponseReturnValue:
    """Create a workflow with its ordered modules."""
    body = parse_body(WorkflowIn)
    workflow = Workflow(
        owner_id=g.user.id,
        title=body.title,
        topic=body.topic,
        audience=body.audience,
        modules=[
            Module(position=i, title=m.title, contact_hours=m.contact_hours)
            for i, m in enumerate(body.modules)
        ],
    )
    db.session.add(workflow)
    db.session.commit()
    return jsonify({"success": True, "data": workflow.to_dict()}), 201


def _workflow_item(row: WorkflowRow) -> dict[str, Any]:
    return {
        "id": row.workflow.id,
        "title": row.workflow.title,
        "topic": row.workflow.topic,
        "audience": row.workflow.audience,
        "createdAt": isoformat(row.workflow.created_at),
        "status": row.status,
        "modulesGenerated": row.modules_generated,
        "totalModules": row.total_modules,
    }


@bp.get("/v3/workflows")
def list_workflows() -> ResponseReturnValue:
    """List the caller's workflows (an admin: everyone's), newest first, a page at a time."""
    status = query_choice("status", list(WORKFLOW_STATUSES))
    page, limit = query_page()
    found = workflow_page(owner_filter(g.user), status, page, limit)
    return jsonify(
        {
            "success": True,
            "data": [_workflow_item(row) for row in found.rows],
            "pagination": found.pagination(),
        }
    )


@bp.get("/v3/workflow/<workflow_id>")
def get_workflow(workflow_id: str) -> ResponseReturnValue:
    """Show a workflow and its modules."""
    return jsonify({"success": True, "data": load_workflow(workflow_id).to_dict()})


@bp.post("/v3/workflow/<workflow_id>/step10")
def start_step10(workflow_id: str) -> ResponseReturnValue:
    """Queue lesson-plan generation; returns at once, the modules run one after another."""
    workflow = load_workflow(workflow_id)
    body = parse_optional_body(Step10StartIn)
    if body.module_index is not None:
        return _regenerate_module(workflow, body.module_index)
    queued = lesson_plan_run.start_generation(workflow, g.user.id, fresh=body.fresh)
    db.session.expire_all()
    workflow = load_workflow(workflow_id)
    done = sum(1 for m in workflow.modules if m.status == WorkStatus.COMPLETED)
    data: dict[str, Any] = {
        "jobsQueued": queued,
        "modulesGenerated": done,
        "totalModules": len(workflow.modules),
        "estimatedTimeMinutes": estimated_minutes(workflow.modules),
    }
    if done == len(workflow.modules):
        message = 'All modules already have lesson plans; send {"fresh": true} to regenerate them.'
        return jsonify({"success": True, "data": data, "message": message}), 200
    if queued:
        message = f"Step 10 generation started. {queued} module(s) will be generated in the background."
    else:
        message = "Step 10 generation is already in progress."
    return jsonify({"success": True, "data": data, "message": message}), 202


def _regenerate_module(workflow: Workflow, index: int) -> ResponseReturnValue:
    """Queue one module's lesson plans afresh; 422 for an index the workflow lacks, 409 while a run runs."""
    if index >= len(workflow.modules):
        raise ApiError(
            422,
            "validation_error",
            f"moduleIndex: this workflow has modules 0 to {len(workflow.modules) - 1}",
            [{"field": "moduleIndex", "message": f"no module {index} in this workflow"}],
        )
    module = workflow.modules[index]
    try:
        queued = lesson_plan_run.regenerate_module(module, g.user.id)
    except lesson_plan_run.GenerationInProgress as exc:
        raise ApiError(409, "generation_in_progress", str(exc)) from None
    data = {
        "jobsQueued": int(queued),
        "moduleIndex": index,
        "jobId": lesson_plan_run.module_job_id(workflow.id, index),
    }
    message = f"Module {index + 1} ({module.title}) will be regenerated in the background."
    return jsonify({"success": True, "data": data, "message": message}), 202


@bp.get("/v3/workflow/<workflow_id>/step10/status")
def step10_status(workflow_id: str) -> ResponseReturnValue:
    """Report generation progress from the database."""
    return jsonify({"success": True, "data": generation_status(load_workflow(workflow_id))})


@bp.get("/v3/workflow/<workflow_id>/step10")
def step10_data(workflow_id: str) -> ResponseReturnValue:
    """Return the generated lesson plans by module, with totals."""
    workflow = load_workflow(workflow_id, with_lessons=True)
    modules = [
        module.to_dict() | {"lessonPlans": [lesson.to_dict() for lesson in module.lesson_plans]}
        for module in workflow.modules
    ]
    lessons = [lesson for module in workflow.modules for lesson in module.lesson_plans]
    data = {
        "workflowId": workflow.id,
        "modules": modules,
        "totalLessons": len(lessons),
        "totalContactHours": round(sum(lesson.duration_minutes for lesson in lessons) / 60, 2),
    }
    return jsonify({"success": True, "data": data})
