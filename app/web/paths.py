"""A learning path's page: its build's progress panel, the controls, and the generated tree."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

from flask import redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from htmx_flask import request  # flask.request, typed with the .htmx that the Htmx extension adds
from sqlalchemy import Select, bindparam, select
from werkzeug.exceptions import NotFound

from app.access import owned_build, owned_path
from app.extensions import db
from app.inputs import bounded_int
from app.models import Build, BuildStep, Concept, LearningPath, StepType, SubConcept, WorkStatus
from app.models.statuses import FINAL_BUILD
from app.pipelines.learning_paths import control as build_control
from app.pipelines.learning_paths.events import recent_events
from app.pipelines.learning_paths.status import estimated_seconds_left, progress_percent, rate_limit_wait
from app.pipelines.usage import build_usage
from app.web import bp, page_or_fragment, swap_whole
from app.web.refusals import BUILD_REFUSALS, PAGE_REFUSALS, page_refusal

CONTROLS = {
    "cancel": build_control.cancel_build,
    "pause": build_control.pause_build,
    "resume": build_control.resume_build,
}


def _latest_build(path_id: str) -> Build | None:
    return db.session.scalar(_latest_build_query(), {"path_id": path_id})


@cache
def _latest_build_query() -> Select[Build]:
    """Built once, as every poll of a path page runs it."""
    return (
        select(Build).where(Build.path_id == bindparam("path_id")).order_by(Build.created_at.desc()).limit(1)
    )


def _has_concepts(path_id: str) -> bool:
    """Whether the path has a tree to export (one indexed look-up, not a load of the tree)."""
    return db.session.scalar(select(Concept.id).where(Concept.path_id == path_id).limit(1)) is not None


def _failed_in_tree(build: Build | None) -> dict[str, set[int | None]]:
    """The concepts and sub-concepts whose step failed in the latest build, marked in the tree."""
    if build is None:
        return {"concepts": set(), "sub_concepts": set()}
    failed = db.session.execute(
        select(BuildStep.type, BuildStep.entity_id).where(
            BuildStep.build_id == build.id, BuildStep.status == WorkStatus.FAILED
        )
    ).all()
    return {
        "concepts": {entity for kind, entity in failed if kind == StepType.SUB_CONCEPTS},
        "sub_concepts": {entity for kind, entity in failed if kind == StepType.KNOWLEDGE_UNITS},
    }


def _panel(build: Build | None) -> dict[str, Any]:
    """What the progress panel shows: a constant number of queries, whatever the build's size."""
    if build is None:
        return {"build": None, "live": False}
    events = recent_events(build.id, 20)
    piece = _piece_of(build)
    wait = rate_limit_wait(build)
    return {
        "build": build,
        "piece": piece,
        "piece_label": _piece_label(build, piece),
        "percent": progress_percent(build),
        "events": events,
        "activity": events[0] if events else None,
        "eta_s": estimated_seconds_left(build, wait),
        "rate_limit_wait": wait,
        "usage": build_usage(build),
        "live": build.status not in FINAL_BUILD,
    }


def _piece_of(build: Build) -> Concept | SubConcept | None:
    """The concept or sub-concept a scoped build regenerates (None: the whole path, or gone)."""
    if build.scope_kind is None or build.scope_entity_id is None:
        return None
    if build.scope_kind == "concept":
        return db.session.get(Concept, build.scope_entity_id)
    return db.session.get(SubConcept, build.scope_entity_id)


def _tree_being_replaced(build: Build | None) -> list[dict[str, Any]] | None:
    """While a whole-path regenerate runs, the tree it replaces (the new one is half made)."""
    if build is None or build.status in FINAL_BUILD or build.scope_kind is not None:
        return None
    return build.previous_tree if build.force_fresh else None


def _piece_label(build: Build, piece: Concept | SubConcept | None) -> str | None:
    """What a scoped build regenerates, numbered as people count: 'concept 3: Title' or
    'sub-concept 3.2: Title' (None for a whole-path build)."""
    if build.scope_kind is None:
        return None
    if piece is None:
        return f"a {build.scope_kind} since replaced"
    if isinstance(piece, SubConcept):
        return f"sub-concept {piece.concept.position + 1}.{piece.position + 1}: {piece.name}"
    return f"concept {piece.position + 1}: {piece.name}"


def _render(
    path: LearningPath,
    notice: str | None = None,
    status: int = 200,
    fragment: str = "web/_build_progress.html",
) -> tuple[str, int]:
    build = _latest_build(path.id)
    failed_in_tree = {} if request.htmx else _failed_in_tree(build)
    previous_tree = None if request.htmx else _tree_being_replaced(build)
    body = page_or_fragment(
        "web/path.html",
        fragment,
        path=path,
        notice=notice,
        failed_in_tree=failed_in_tree,
        previous_tree=previous_tree,
        export_ready=_has_concepts(path.id),
        export_reason="Nothing to download yet: build the path first.",
        export_url=url_for("web.export_path", path_id=path.id),
        **_panel(build),
    )
    return body, status


@bp.get("/paths/<path_id>")
def path(path_id: str) -> ResponseReturnValue:
    """Show a path, its latest build's progress and its tree (the live panel alone for HTMX)."""
    return _render(owned_path(path_id, current_user, with_tree=not request.htmx))


@bp.get("/paths/<path_id>/tree")
def path_tree(path_id: str) -> ResponseReturnValue:
    """The generated tree alone (loaded once a build ends)."""
    path = owned_path(path_id, current_user, with_tree=True)
    failed_in_tree = _failed_in_tree(_latest_build(path.id))
    return render_template("web/_tree.html", path=path, failed_in_tree=failed_in_tree)


@bp.post("/paths/<path_id>/build")
def build(path_id: str) -> ResponseReturnValue:
    """Start a build of the path."""
    path = owned_path(path_id, current_user)
    try:
        build_control.start_build(path, current_user.id)
    except PAGE_REFUSALS as exc:
        return _render(path, *page_refusal(exc))
    return _after_action(path)


@bp.post("/builds/<build_id>/<action>")
def control(build_id: str, action: str) -> ResponseReturnValue:
    """Cancel, pause, resume or retry a build, then show the panel (polling again if live)."""
    build = owned_build(build_id, current_user)
    try:
        if action == "retry":
            build_control.retry_build(build, current_user.id)
        elif action in CONTROLS:
            CONTROLS[action](build)
        else:
            return _render(build.path, f"Unknown action {action!r}.", 404)
    except BUILD_REFUSALS as exc:
        return _render(build.path, *page_refusal(exc))
    return _after_action(build.path)


def _requested_piece(path: LearningPath, values: Mapping[str, str]) -> Concept | SubConcept | None:
    """The piece named by `concept` or `sub_concept` (a 404 if the path has no such piece);
    None when neither is given: the whole path."""
    for kind, field in (("concept", "concept"), ("sub-concept", "sub_concept")):
        raw = values.get(field)
        if raw is not None:
            entity_id = bounded_int(raw)
            if entity_id is None:
                raise NotFound(f"No {kind} {raw!r} in this path.")
            try:
                return build_control.find_piece(path, kind, entity_id)
            except build_control.UnknownPiece as exc:
                raise NotFound(str(exc)) from None
    return None


@bp.get("/paths/<path_id>/regenerate")
def confirm_regenerate(path_id: str) -> ResponseReturnValue:
    """Ask before regenerating the path or one piece of it: the content is replaced."""
    path = owned_path(path_id, current_user)
    piece = _requested_piece(path, request.args)
    kind = build_control.SCOPE_KIND.get(type(piece))
    return render_template("web/confirm_regenerate.html", path=path, piece=piece, kind=kind)


@bp.post("/paths/<path_id>/regenerate")
def regenerate(path_id: str) -> ResponseReturnValue:
    """Regenerate the whole path afresh, or one concept or sub-concept of it."""
    path = owned_path(path_id, current_user)
    piece = _requested_piece(path, request.form)
    try:
        build_control.start_build(path, current_user.id, fresh=True, piece=piece)
    except PAGE_REFUSALS as exc:
        return _render(path, *page_refusal(exc, regenerate=True))
    return redirect(url_for("web.path", path_id=path.id))


def _after_action(path: LearningPath) -> ResponseReturnValue:
    if request.htmx:
        db.session.expire_all()
        return (*_render(path, fragment="web/_build_push.html"), swap_whole("#build-push"))
    return redirect(url_for("web.path", path_id=path.id))
