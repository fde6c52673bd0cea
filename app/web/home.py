"""Home: my workflows and learning paths, and the forms that create them."""

from __future__ import annotations

from flask import redirect, render_template, url_for
from flask_login import current_user
from sqlalchemy import select

from app.extensions import db
from app.forms import PathForm, WorkflowForm
from app.models import BuildJob, LearningPath, LessonPlanRun, Module, Workflow
from app.web import bp


def _mine(model):  # type: ignore[no-untyped-def]
    query = select(model).order_by(model.created_at.desc()).limit(50)
    return query if current_user.is_admin else query.where(model.owner_id == current_user.id)


def _latest_by(model, key, ids: list[str]) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """The newest row of `model` for each id, in one query."""
    if not ids:
        return {}
    rows = db.session.scalars(select(model).where(key.in_(ids)).order_by(model.created_at)).all()
    return {getattr(row, key.key): row for row in rows}


def render_home(
    workflow_form: WorkflowForm | None = None, path_form: PathForm | None = None, status: int = 200
) -> tuple[str, int]:
    workflows = db.session.scalars(_mine(Workflow)).all()
    paths = db.session.scalars(_mine(LearningPath)).all()
    runs = _latest_by(LessonPlanRun, LessonPlanRun.workflow_id, [w.id for w in workflows])
    builds = _latest_by(BuildJob, BuildJob.path_id, [p.id for p in paths])
    body = render_template(
        "web/home.html",
        workflows=workflows,
        paths=paths,
        runs=runs,
        builds=builds,
        workflow_form=workflow_form or WorkflowForm(prefix="workflow"),
        path_form=path_form or PathForm(prefix="path"),
    )
    return body, status


@bp.get("/")
def home():  # type: ignore[no-untyped-def]
    """List my workflows and paths with their latest status."""
    return render_home()


@bp.post("/workflows")
def create_workflow():  # type: ignore[no-untyped-def]
    """Create a workflow from the form, or show the form again with its errors."""
    form = WorkflowForm(prefix="workflow")
    if not form.validate_on_submit():
        return render_home(workflow_form=form, status=422)
    workflow = Workflow(
        owner_id=current_user.id,
        title=form.title.data.strip(),
        topic=form.topic.data.strip(),
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
def create_path():  # type: ignore[no-untyped-def]
    """Create a learning path from the form, or show the form again with its errors."""
    form = PathForm(prefix="path")
    if not form.validate_on_submit():
        return render_home(path_form=form, status=422)
    path = LearningPath(
        owner_id=current_user.id,
        name=form.name.data.strip(),
        topic=form.topic.data.strip(),
        description=(form.description.data or "").strip() or None,
        concept_count=form.concept_count.data,
    )
    db.session.add(path)
    db.session.commit()
    return redirect(url_for("web.path", path_id=path.id))
