"""Curriculum workflows, their ordered modules, the lesson plans generated for each module,
and the lesson-plan runs that drive generation one module after another."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.database import isoformat, utcnow
from app.extensions import Model
from app.models.statuses import RunStatus
from app.models.tracking import TrackedWork

# A module's contact hours: at least a 15-minute lesson, at most 200 hours. The API, the page
# form share these bounds, so one rule decides what a module may be.
MIN_CONTACT_HOURS = 0.25
MAX_CONTACT_HOURS = 200.0


def new_id() -> str:
    return uuid.uuid4().hex


class Workflow(Model):
    __tablename__ = "workflows"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    topic: Mapped[str] = mapped_column(String(200))
    audience: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    modules: Mapped[list[Module]] = relationship(
        back_populates="workflow", order_by="Module.position", cascade="all, delete-orphan"
    )

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "topic": self.topic,
            "audience": self.audience,
            "createdAt": isoformat(self.created_at),
            "modules": [module.to_dict() for module in self.modules],
        }


class Module(TrackedWork, Model):
    """One module of a workflow, and the state of the job that generates its lesson plans."""

    __tablename__ = "modules"
    __table_args__ = (UniqueConstraint("workflow_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    workflow_id: Mapped[str] = mapped_column(ForeignKey("workflows.id", ondelete="CASCADE"))
    position: Mapped[int]  # 0-based, as in the job id step10-<workflow>-module-<position>
    title: Mapped[str] = mapped_column(String(200))
    contact_hours: Mapped[float]

    workflow: Mapped[Workflow] = relationship(back_populates="modules")
    lesson_plans: Mapped[list[LessonPlan]] = relationship(
        back_populates="module", order_by="LessonPlan.order", cascade="all, delete-orphan"
    )

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.position,
            "title": self.title,
            "contactHours": self.contact_hours,
            "status": self.status,
            "progress": self.progress,
        }


class LessonPlan(Model):
    __tablename__ = "lesson_plans"
    __table_args__ = (UniqueConstraint("module_id", "order"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    module_id: Mapped[int] = mapped_column(ForeignKey("modules.id", ondelete="CASCADE"))
    order: Mapped[int]
    title: Mapped[str] = mapped_column(String(300))
    objectives: Mapped[list[str]] = mapped_column(JSON)
    activities: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    assessment: Mapped[str] = mapped_column(Text)
    duration_minutes: Mapped[int]

    module: Mapped[Module] = relationship(back_populates="lesson_plans")

    def to_dict(self) -> dict[str, Any]:
        return {
            "order": self.order,
            "title": self.title,
            "objectives": self.objectives,
            "activities": [activity_to_dict(activity) for activity in self.activities],
            "assessment": self.assessment,
            "durationMinutes": self.duration_minutes,
        }


def activity_to_dict(activity: dict[str, Any]) -> dict[str, Any]:
    """A stored activity (generator field names) in the API's camelCase."""
    return {
        "name": activity["name"],
        "kind": activity["kind"],
        "durationMinutes": activity["duration_minutes"],
    }


class LessonPlanRun(Model):
    """A request to generate a workflow's lesson plans; at most one runs per workflow."""

    __tablename__ = "lesson_plan_runs"
    __table_args__ = (
        Index(
            "uq_lesson_plan_runs_one_running",
            "workflow_id",
            unique=True,
            sqlite_where=text("status = 'running'"),
            postgresql_where=text("status = 'running'"),
        ),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    workflow_id: Mapped[str] = mapped_column(ForeignKey("workflows.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16), default=RunStatus.RUNNING)
    triggered_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    error: Mapped[str | None] = mapped_column(Text)
    force_fresh: Mapped[bool] = mapped_column(default=False)  # ask the model again, reuse nothing
    # A run that regenerates one module only; none, every module still owed.
    scope_module_id: Mapped[int | None] = mapped_column(ForeignKey("modules.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]


class RunEvent(Model):
    """Append-only, like BuildEvent: what a run's SSE stream sends and replays by id."""

    __tablename__ = "run_events"
    __table_args__ = (Index("ix_run_events_run_id_id", "run_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("lesson_plan_runs.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(20))  # progress | module_completed | error | completed
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "runId": self.run_id,
            "type": self.type,
            "data": self.data,
            "timestamp": isoformat(self.created_at),
        }
