"""The job queue: stat cards and one table of builds and lesson-plan runs, read from the
database (not Redis), in a constant number of indexed queries however many rows there are."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import current_app, render_template
from flask.typing import ResponseReturnValue
from htmx_flask import request  # flask.request, typed with the .htmx that the Htmx extension adds
from sqlalchemy import ColumnElement, Select, Subquery, case, func, literal, or_, select, union_all

from app.admin import bp
from app.database import utcnow
from app.extensions import Model, db
from app.inputs import MAX_ID, bounded_int
from app.models import Build, LearningPath, LessonPlanRun, Module, User, Workflow
from app.models.statuses import RUN_AS_BUILD, BuildStatus, RunStatus, WorkStatus
from app.pipelines.learning_paths.release import HELD_REASON, step_placement
from app.pipelines.learning_paths.status import progress_percent, unit_fractions

PAGE_SIZE = 25
# One vocabulary for both kinds of work: a run is listed in a build's words (RUN_AS_BUILD).
STATUS_FILTERS = list(BuildStatus)


def _rows() -> Subquery:
    run_status = case(RUN_AS_BUILD, value=LessonPlanRun.status, else_=LessonPlanRun.status)
    builds = (
        select(
            Build.id.label("id"),
            literal("build").label("kind"),
            LearningPath.name.label("what"),
            LearningPath.id.label("subject_id"),
            User.email.label("owner"),
            Build.status.label("status"),
            Build.created_at.label("created_at"),
            Build.error.label("error"),
        )
        .join(LearningPath, Build.path_id == LearningPath.id)
        .join(User, LearningPath.owner_id == User.id)
    )
    runs = (
        select(
            LessonPlanRun.id,
            literal("lesson plans"),
            Workflow.title,
            Workflow.id,
            User.email,
            run_status,
            LessonPlanRun.created_at,
            LessonPlanRun.error,
        )
        .join(Workflow, LessonPlanRun.workflow_id == Workflow.id)
        .join(User, Workflow.owner_id == User.id)
    )
    return union_all(builds, runs).subquery("work")


def _filtered(work: Subquery, status: str | None, search: str) -> Select[Any]:
    query = select(work)
    if status:
        query = query.where(work.c.status == status)
    if search:
        like = f"%{search}%"
        columns = (work.c.what, work.c.owner, work.c.id, work.c.error)
        query = query.where(or_(*(column.ilike(like) for column in columns)))
    return query


def stats() -> dict[str, int]:
    """Active, waiting, completed in the last 24 h, failed: builds and runs together."""
    since = utcnow() - timedelta(hours=24)

    def count(model: type[Model], *conditions: ColumnElement[bool]) -> int:
        return db.session.scalar(select(func.count()).select_from(model).where(*conditions)) or 0

    return {
        "active": count(Build, Build.status == BuildStatus.PROCESSING)
        + count(LessonPlanRun, LessonPlanRun.status == RunStatus.RUNNING),
        "waiting": count(Build, Build.status.in_([BuildStatus.PENDING, BuildStatus.PAUSED])),
        "completed": count(Build, Build.status == BuildStatus.COMPLETED, Build.completed_at >= since)
        + count(
            LessonPlanRun, LessonPlanRun.status == RunStatus.COMPLETE, LessonPlanRun.finished_at >= since
        ),
        "failed": count(Build, Build.status == BuildStatus.FAILED)
        + count(LessonPlanRun, LessonPlanRun.status == RunStatus.FAILED),
    }


def _build_progress(ids: list[str]) -> dict[str, int]:
    """progressPercent of many builds in two queries (run even for none: a constant count)."""
    units = unit_fractions(ids)
    builds = db.session.scalars(select(Build).where(Build.id.in_(ids)))
    return {build.id: progress_percent(build, units.get(build.id, 0.0)) for build in builds}


def _run_progress(workflow_ids: list[str]) -> dict[str, int]:
    """Share of each workflow's modules completed, in one query."""
    rows = db.session.execute(
        select(
            Module.workflow_id,
            func.sum(case((Module.status == WorkStatus.COMPLETED, 1), else_=0)),
            func.count(Module.id),
        )
        .where(Module.workflow_id.in_(workflow_ids))
        .group_by(Module.workflow_id)
    ).all()
    return {workflow_id: round(100 * done / total) for workflow_id, done, total in rows if total}


def _page_rows(
    status: str | None, search: str, asked_page: int
) -> tuple[list[dict[str, Any]], int, int, int]:
    """One page of rows, the total, the page shown and the page count; a page past the last
    shows the last (never "Page 999 of 1")."""
    work = _rows()
    filtered = _filtered(work, status, search)
    total = db.session.scalar(select(func.count()).select_from(filtered.subquery())) or 0
    pages = max(1, -(-total // PAGE_SIZE))
    page = min(max(1, asked_page), pages)
    rows = db.session.execute(
        filtered.order_by(work.c.created_at.desc(), work.c.id).limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE)
    ).all()
    builds = _build_progress([r.id for r in rows if r.kind == "build"])
    runs = _run_progress([r.subject_id for r in rows if r.kind != "build"])
    progress = {r.id: builds.get(r.id, 0) if r.kind == "build" else runs.get(r.subject_id, 0) for r in rows}
    placement = step_placement([r.id for r in rows if r.kind == "build" and r.status == "processing"])
    return (
        [dict(r._mapping) | {"progress": progress[r.id], "steps": placement.get(r.id)} for r in rows],
        total,
        page,
        pages,
    )


@bp.get("/")
@bp.get("/jobs")
def queue() -> ResponseReturnValue:
    """Show the stat cards and the filtered, searchable, paginated table of work (only those,
    the live region, for HTMX: the admin stream or the fallback poll re-renders them)."""
    status = request.args.get("status") or None
    if status not in STATUS_FILTERS:
        status = None
    search = (request.args.get("q") or "").strip()[:200]
    requested = min(bounded_int(request.args.get("page"), low=1) or 1, MAX_ID // PAGE_SIZE)
    rows, total, page, pages = _page_rows(status, search, requested)
    return render_template(
        "admin/_queue_live.html" if request.htmx else "admin/queue.html",
        poll_s=current_app.config["POLL_INTERVAL_S"],
        stats=stats(),
        rows=rows,
        total=total,
        page=page,
        pages=pages,
        status=status,
        search=search,
        statuses=STATUS_FILTERS,
        held_reason=HELD_REASON,
    )
