"""A build of a learning path, its steps, its append-only event log, and its dead letters."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.database import isoformat, utcnow
from app.extensions import Model
from app.models.learning_paths import LearningPath
from app.models.statuses import BuildStatus
from app.models.tracking import TrackedWork
from app.models.workflows import new_id

SCOPE_FIELDS = {"concept": "conceptId", "sub-concept": "subConceptId"}  # scope_kind → API field


class StepType(enum.StrEnum):
    """A step is named after the stage it produces."""

    CONCEPTS = "concepts"  # the orchestrator: the path's concepts
    SUB_CONCEPTS = "sub-concepts"  # one concept broken into sub-concepts
    KNOWLEDGE_UNITS = "knowledge-units"  # one sub-concept's knowledge units


class Build(Model):
    __tablename__ = "build_jobs"
    __table_args__ = (
        # One active build per path: twenty concurrent requests get one 202, nineteen 409s.
        Index(
            "uq_build_jobs_one_active_per_path",
            "path_id",
            unique=True,
            sqlite_where=text("status IN ('pending', 'processing', 'paused')"),
            postgresql_where=text("status IN ('pending', 'processing', 'paused')"),
        ),
        Index("ix_build_jobs_status_created", "status", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    path_id: Mapped[str] = mapped_column(ForeignKey("learning_paths.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16), default=BuildStatus.PENDING)
    current_stage: Mapped[str | None] = mapped_column(String(20))
    total_concepts: Mapped[int] = mapped_column(default=0)
    completed_concepts: Mapped[int] = mapped_column(default=0)
    total_sub_concepts: Mapped[int] = mapped_column(default=0)
    completed_sub_concepts: Mapped[int] = mapped_column(default=0)
    total_knowledge_units: Mapped[int] = mapped_column(default=0)
    completed_knowledge_units: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(Text)
    error_count: Mapped[int] = mapped_column(default=0)
    # Summed durations of the completed steps of the two fanned-out stages: the time-left
    # estimate reads these instead of scanning every step on each poll.
    sub_concepts_ms: Mapped[int] = mapped_column(default=0)
    knowledge_units_ms: Mapped[int] = mapped_column(default=0)
    # Generator usage summed as each call is recorded (in the call record's transaction), so a
    # poll reads one row instead of summing every call of the build. Models as ",a,b,".
    usage_calls: Mapped[int] = mapped_column(default=0)
    usage_memo_hits: Mapped[int] = mapped_column(default=0)
    usage_prompt_tokens: Mapped[int] = mapped_column(default=0)
    usage_completion_tokens: Mapped[int] = mapped_column(default=0)
    usage_models: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    started_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    rq_job_id: Mapped[str | None] = mapped_column(String(120))
    triggered_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    retry_of: Mapped[str | None] = mapped_column(String(32))
    force_fresh: Mapped[bool] = mapped_column(default=False)  # ask the model again, reuse nothing
    # A build of one piece of the tree: "concept" or "sub-concept" and its id; none, the whole path.
    scope_kind: Mapped[str | None] = mapped_column(String(20))
    scope_entity_id: Mapped[int | None]
    # A whole-path regenerate keeps the tree it replaces here, shown while it runs (loaded only
    # when asked for: polls never read it).
    previous_tree: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, deferred=True)

    path: Mapped[LearningPath] = relationship()

    @property
    def scope(self) -> dict[str, int | None] | None:
        """The piece this build regenerates, as the API names it; None for the whole path."""
        if self.scope_kind is None:
            return None
        return {SCOPE_FIELDS[self.scope_kind]: self.scope_entity_id}

    def to_dict(self, progress_percent: int) -> dict[str, Any]:
        return {
            "id": self.id,
            "pathId": self.path_id,
            "status": self.status,
            "currentStage": self.current_stage,
            "totalConcepts": self.total_concepts,
            "completedConcepts": self.completed_concepts,
            "totalSubConcepts": self.total_sub_concepts,
            "completedSubConcepts": self.completed_sub_concepts,
            "totalKnowledgeUnits": self.total_knowledge_units,
            "completedKnowledgeUnits": self.completed_knowledge_units,
            "progressPercent": progress_percent,
            "error": self.error,
            "errorCount": self.error_count,
            "createdAt": isoformat(self.created_at),
            "updatedAt": isoformat(self.updated_at),
            "startedAt": isoformat(self.started_at),
            "completedAt": isoformat(self.completed_at),
            "rqJobId": self.rq_job_id,
            "triggeredBy": self.triggered_by,
            "retryOf": self.retry_of,
            "scope": self.scope,
        }


class BuildStep(TrackedWork, Model):
    __tablename__ = "job_steps"
    __table_args__ = (
        UniqueConstraint("build_id", "type", "entity_id"),
        Index("ix_job_steps_build_status", "build_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    build_id: Mapped[str] = mapped_column(ForeignKey("build_jobs.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(20))
    entity_id: Mapped[int | None]  # the concept or sub-concept it works on (none: the path)
    entity_name: Mapped[str | None] = mapped_column(String(300))
    parent_step_id: Mapped[int | None] = mapped_column(ForeignKey("job_steps.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(default=0)  # order within the build, for display
    # For a sub-concepts step: how many knowledge-unit steps it fanned out, and how many of
    # those completed; the build's progress weighs each concept equally with these.
    children_total: Mapped[int] = mapped_column(default=0)
    children_done: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "buildId": self.build_id,
            "type": self.type,
            "status": self.status,
            "entityId": self.entity_id,
            "entityName": self.entity_name,
            "parentStepId": self.parent_step_id,
            "error": self.error,
            "errorCategory": self.error_category,
            "traceback": self.traceback,
            "attempts": self.attempts,
            "failedAttempts": self.failed_attempts,
            "workerLosses": self.worker_losses,
            "progress": self.progress,
            "createdAt": isoformat(self.created_at),
            "startedAt": isoformat(self.started_at),
            "completedAt": isoformat(self.completed_at),
            "durationMs": self.duration_ms,
            "waitMs": self.rate_limit_waited_ms,
            "workMs": self.work_ms,
            "waitingForRateLimit": self.waiting_for_rate_limit,
            "rateLimitNextSlotAt": isoformat(self.rate_limit_next_slot_at)
            if self.waiting_for_rate_limit
            else None,
        }
