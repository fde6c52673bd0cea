"""Builds of learning paths (the plan's JobsController): start, watch, control, steps."""

from __future__ import annotations

from collections.abc import Callable

from flask import g, jsonify
from flask.typing import ResponseReturnValue
from sqlalchemy import Select, select

from app.access import visible_to
from app.api import bp
from app.api.control_errors import api_errors_of_build_control
from app.api.loaders import load_build, load_path
from app.api.schemas import BuildStartIn, PieceIn, parse_optional_body, query_choice, query_int, query_page
from app.extensions import db
from app.models import Build, BuildStatus, BuildStep, Concept, LearningPath, StepType, SubConcept, WorkStatus
from app.pipelines.learning_paths import control as build_control
from app.pipelines.learning_paths.status import build_summaries, build_summary
from app.pipelines.learning_paths.step_rows import step_job_id
from app.pipelines.learning_paths.tree import tree_is_complete
from app.pipelines.listings import page_of
from app.pipelines.usage import usage_by_step
from app.seed_names import build_json, step_json

TREE_COMPLETE = (
    'The path\'s tree is already complete: nothing to build. Send {"fresh": true} to regenerate it.'
)


def _visible_builds() -> Select[Build]:
    return visible_to(g.user, select(Build).join(LearningPath), LearningPath.owner_id)


@bp.post("/jobs/build/<path_id>")
def start_build(path_id: str) -> ResponseReturnValue:
    """Start a build of the path, or of one piece of it (`scope`); 409 names the active build,
    200 says there is nothing to build."""
    path = load_path(path_id)
    body = parse_optional_body(BuildStartIn)
    # Only a plain start (every option left at its default) can find nothing to do: `fresh` and
    # a scoped regenerate must go through.
    if body == BuildStartIn() and build_control.active_build(path.id) is None and tree_is_complete(path):
        return {"alreadyComplete": True, "message": TREE_COMPLETE}, 200
    piece = _piece(path, body.scope) if body.scope else None
    with api_errors_of_build_control():
        build = build_control.start_build(path, g.user.id, fresh=body.fresh, piece=piece)
    return build_json({"buildId": build.id, "message": "Build job started", "scope": build.scope}), 202


def _piece(path: LearningPath, scope: PieceIn) -> Concept | SubConcept:
    kind, entity_id = (
        ("concept", scope.concept_id) if scope.concept_id else ("sub-concept", scope.sub_concept_id)
    )
    with api_errors_of_build_control():
        return build_control.find_piece(path, kind, entity_id or 0)


@bp.get("/jobs/<build_id>")
def get_build(build_id: str) -> ResponseReturnValue:
    """Show a build with its progress."""
    return build_json(build_summary(load_build(build_id)))


@bp.get("/jobs/path/<path_id>")
def builds_of_path(path_id: str) -> ResponseReturnValue:
    """List one page of the path's builds, newest first."""
    path = load_path(path_id)
    page, limit = query_page()
    query = select(Build).where(Build.path_id == path.id).order_by(Build.created_at.desc(), Build.id.desc())
    builds = page_of(query, page, limit)
    return {"data": [build_json(b) for b in build_summaries(builds.rows)], "pagination": builds.pagination()}


@bp.get("/jobs")
def list_builds() -> ResponseReturnValue:
    """List builds (an admin sees everyone's), newest first."""
    status = query_choice("status", [s.value for s in BuildStatus])
    limit = query_int("limit", 50, 1, 200)
    query = _visible_builds().order_by(Build.created_at.desc()).limit(limit)
    if status:
        query = query.where(Build.status == status)
    return jsonify([build_json(b) for b in build_summaries(list(db.session.scalars(query)))])


def _control(build_id: str, action: Callable[[Build], object]) -> None:
    build = load_build(build_id)
    with api_errors_of_build_control():
        action(build)


@bp.post("/jobs/<build_id>/cancel")
def cancel_build(build_id: str) -> ResponseReturnValue:
    """Cancel a build: nothing more starts, running steps stop."""
    _control(build_id, build_control.cancel_build)
    return {"success": True}


@bp.post("/jobs/<build_id>/pause")
def pause_build(build_id: str) -> ResponseReturnValue:
    """Pause a build: no new step starts until it is resumed."""
    _control(build_id, build_control.pause_build)
    return {"success": True}


@bp.post("/jobs/<build_id>/resume")
def resume_build(build_id: str) -> ResponseReturnValue:
    """Resume a paused build where it stopped."""
    _control(build_id, build_control.resume_build)
    return {"success": True}


@bp.post("/jobs/<build_id>/retry")
def retry_build(build_id: str) -> ResponseReturnValue:
    """Start a new build that re-runs only what the failed or cancelled one did not complete."""
    build = load_build(build_id)
    with api_errors_of_build_control():
        retry = build_control.retry_build(build, g.user.id)
    return build_json({"buildId": retry.id}), 202


@bp.get("/jobs/<build_id>/steps")
def build_steps(build_id: str) -> ResponseReturnValue:
    """List one page of a build's steps in creation order, optionally by status or type
    (the whole tree, however large, is the path's export)."""
    build = load_build(build_id)
    status = query_choice("status", [s.value for s in WorkStatus])
    kind = query_choice("type", [t.value for t in StepType])
    page, limit = query_page()
    query = select(BuildStep).where(BuildStep.build_id == build.id).order_by(BuildStep.id)
    if status:
        query = query.where(BuildStep.status == status)
    if kind:
        query = query.where(BuildStep.type == kind)
    steps = page_of(query, page, limit)
    usage = usage_by_step(build.id, [step.id for step in steps.rows])
    data = [
        step_json(step.to_dict() | {"rqJobId": step_job_id(step.id), "usage": usage.get(step.id)})
        for step in steps.rows
    ]
    return {"data": data, "pagination": steps.pagination()}
