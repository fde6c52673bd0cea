"""Home: my workflows and learning paths, and the forms that create them."""

from __future__ import annotations

from typing import Any

from flask import redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from sqlalchemy import Row, ScalarSelect, Select, func, select

from app.access import visible_to
from app.extensions import db
from app.forms import PathForm, WorkflowForm
from app.models import Build, LearningPath, LessonPlanRun, Module, Workflow
from app.web import bp

HOME_ROWS = 50  # the newest workflows and paths listed; the API's lists page through them all


def _mine(query: Select[Any], model: type[Workflow] | type[LearningPath]) -> Select[Any]:
    query = query.order_by(model.created_at.desc(), model.id.desc()).limit(HOME_ROWS)
    return visible_to(current_user, query, model.owner_id)


def _newest(column: Any, key: Any, owner: Any) -> ScalarSelect[Any]:
    """`column` of the newest row whose `key` is the outer row's id: one subquery, not one query
    per row, and not every run or build of every listed item."""
    model = column.class_
    return (
        select(column)
        .where(key == owner.id)
        .order_by(model.created_at.desc(), model.id.desc())
        .limit(1)
        .correlate(owner)
        .scalar_subquery()
    )


def _workflow_rows() -> list[Row[Any]]:
    """(workflow, module count, latest run status or None) for the newest workflows."""
    modules = (
        select(func.count(Module.id)).where(Module.workflow_id == Workflow.id).correlate(Workflow)
    ).scalar_subquery()
    run_status = _newest(LessonPlanRun.status, LessonPlanRun.workflow_id, Workflow)
    return list(db.session.execute(_mine(select(Workflow, modules, run_status), Workflow)).all())


def _path_rows() -> list[Row[Any]]:
    """(path, latest build status or None) for the newest paths."""
    build_status = _newest(Build.status, Build.path_id, LearningPath)
    return list(db.session.execute(_mine(select(LearningPath, build_status), LearningPath)).all())


def render_home(
    workflow_form: WorkflowForm | None = None, path_form: PathForm | None = None, status: int = 200
) -> tuple[str, int]:
    body = render_template(
        "web/home.html",
        workflows=_workflow_rows(),
        paths=_path_rows(),
        workflow_form=workflow_form or WorkflowForm(prefix="workflow"),
        path_form=path_form or PathForm(prefix="path"),
    )
    return body, status


@bp.get("/")
def home() -> ResponseReturnValue:
    """List my workflows and paths with their latest status."""
    return render_home()


@bp.post("/workflows")
def create_workflow() -> ResponseReturnValue:
    """Create a workflow from the form, or show the form again with its errors."""
    form = WorkflowForm(prefix="workflow")
    if not form.validate_on_submit():
        return render_home(workflow_form=form, status=422)
    workflow = Workflow(
        owner_id=current_user.id,
        title=(form.title.data or "").strip(),
        topic=(form.topic.data or "").strip(),
        audience=(form.audience.data or "").strip() or None,
        modules=[
            Module(position=i, title=title, contact_hours=hours)
            for i, (title, hours) in enumerate(form.parsed_modules)
        ],
    )
    db.session.add(workflow)
    db.session.commit()
    return redirect(url_for("web.workflow", workflow_id=workflow.id))


@bp.post("/paths")
def create_path() -> ResponseReturnValue:
    """Create a learning path from the form, or show the form again with its errors."""
    form = PathForm(prefix="path")
    if not form.validate_on_submit():
        return render_home(path_form=form, status=422)
    path = LearningPath(
        owner_id=current_user.id,
        name=(form.name.data or "").strip(),
        topic=(form.topic.data or "").strip(),
        description=(form.description.data or "").strip() or None,
        concept_count=form.concept_count.data,
    )
    db.session.add(path)
    db.session.commit()
    return redirect(url_for("web.path", path_id=path.id))
