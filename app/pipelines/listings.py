"""One page of the workflows or learning paths a user may see, newest first, with each one's
status, in a fixed number of queries however many rows there are (no query per row)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, Select, Subquery, and_, case, exists, func, literal, or_, select

from app.extensions import db
from app.models import (
    Build,
    BuildStatus,
    LearningPath,
    LessonPlanRun,
    Module,
    RunStatus,
    Workflow,
    WorkStatus,
)
from app.models.statuses import IN_FLIGHT, WorkflowStatus

# A path that has never been built has no build status to show.
NEVER_BUILT = "new"
WORKFLOW_STATUSES = tuple(status.value for status in WorkflowStatus)
PATH_STATUSES = (NEVER_BUILT, *(status.value for status in BuildStatus))

Row = TypeVar("Row")


@dataclass(frozen=True)
class Page(Generic[Row]):
    rows: list[Row]
    page: int
    limit: int
    total: int

    def pagination(self) -> dict[str, int]:
        return {
            "page": self.page,
            "limit": self.limit,
            "total": self.total,
            "totalPages": math.ceil(self.total / self.limit),
        }


@dataclass(frozen=True)
class WorkflowRow:
    workflow: Workflow
    status: str
    modules_generated: int
    total_modules: int


@dataclass(frozen=True)
class PathRow:
    path: LearningPath
    latest_build: Build | None

    @property
    def status(self) -> str:
        return self.latest_build.status if self.latest_build else NEVER_BUILT


def page_of(query: Select[Any], page: int, limit: int) -> Page[Any]:
    """One page of a single-entity query's rows, with the total (two queries)."""
    total, rows = _count_and_slice(query, page, limit)
    return Page([row[0] for row in rows], page, limit, total)


def _count_and_slice(query: Select[*tuple[Any, ...]], page: int, limit: int) -> tuple[int, list[Any]]:
    total = db.session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    rows = db.session.execute(query.limit(limit).offset((page - 1) * limit)).all()
    return total, list(rows)


def _count_where(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def _module_counts() -> Subquery:
    """Per workflow: its modules, and how many are completed, in flight and failed."""
    return (
        select(
            Module.workflow_id.label("workflow_id"),
            func.count(Module.id).label("total"),
            _count_where(Module.status == WorkStatus.COMPLETED).label("done"),
            _count_where(Module.status.in_(IN_FLIGHT)).label("in_flight"),
            _count_where(Module.status == WorkStatus.FAILED).label("failed"),
        )
        .group_by(Module.workflow_id)
        .subquery()
    )


def workflow_page(owner_id: int | None, status: str | None, page: int, limit: int) -> Page[WorkflowRow]:
    """Workflows of `owner_id` (None: everyone's). The status is the rule of
    `lesson_plans.status.overall_status`, in SQL so that it can be filtered on and paginated."""
    counts = _module_counts()
    total, done = func.coalesce(counts.c.total, 0), func.coalesce(counts.c.done, 0)
    running = exists().where(
        LessonPlanRun.workflow_id == Workflow.id, LessonPlanRun.status == RunStatus.RUNNING
    )
    overall = case(
        (and_(total > 0, done == total), literal(WorkflowStatus.COMPLETE.value)),
        (or_(func.coalesce(counts.c.in_flight, 0) > 0, running), literal(WorkflowStatus.IN_PROGRESS.value)),
        (func.coalesce(counts.c.failed, 0) > 0, literal(WorkflowStatus.FAILED.value)),
        else_=literal(WorkflowStatus.PENDING.value),
    )
    query = (
        select(Workflow, overall, done, total)
        .outerjoin(counts, counts.c.workflow_id == Workflow.id)
        .order_by(Workflow.created_at.desc(), Workflow.id.desc())
    )
    if owner_id is not None:
        query = query.where(Workflow.owner_id == owner_id)
    if status:
        query = query.where(overall == status)
    count, rows = _count_and_slice(query, page, limit)
    return Page([WorkflowRow(w, s, int(d), int(t)) for w, s, d, t in rows], page, limit, count)


def path_page(owner_id: int | None, status: str | None, page: int, limit: int) -> Page[PathRow]:
    """Learning paths of `owner_id` (None: everyone's), each with its latest build, whose
    status is the path's (`new` when it was never built)."""
    latest_id = (
        select(Build.id)
        .where(Build.path_id == LearningPath.id)
        .order_by(Build.created_at.desc(), Build.id.desc())
        .limit(1)
        .correlate(LearningPath)
        .scalar_subquery()
    )
    query = (
        select(LearningPath, Build)
        .outerjoin(Build, Build.id == latest_id)
        .order_by(LearningPath.created_at.desc(), LearningPath.id.desc())
    )
    if owner_id is not None:
        query = query.where(LearningPath.owner_id == owner_id)
    if status == NEVER_BUILT:
        query = query.where(Build.id.is_(None))
    elif status:
        query = query.where(Build.status == status)
    count, rows = _count_and_slice(query, page, limit)
    return Page([PathRow(path, build) for path, build in rows], page, limit, count)
