"""Steps that failed for good."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.database import isoformat, utcnow
from app.extensions import Model
from app.models.builds import BuildStep


class DeadLetter(Model):
    """A step that failed for good: kept to be seen and retried one by one."""

    __tablename__ = "dead_letters"

    id: Mapped[int] = mapped_column(primary_key=True)
    build_id: Mapped[str] = mapped_column(ForeignKey("build_jobs.id", ondelete="CASCADE"), index=True)
    step_id: Mapped[int] = mapped_column(ForeignKey("job_steps.id", ondelete="CASCADE"), index=True)
    original_queue: Mapped[str] = mapped_column(String(40))
    job_id: Mapped[str | None] = mapped_column(String(120))
    error: Mapped[str | None] = mapped_column(Text)
    category: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    retried_at: Mapped[datetime | None]

    step: Mapped[BuildStep] = relationship()

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "buildId": self.build_id,
            "stepId": self.step_id,
            "stepType": self.step.type,
            "entityName": self.step.entity_name,
            "originalQueue": self.original_queue,
            "rqJobId": self.job_id,  # the RQ job of the dead step
            "error": self.error,
            "category": self.category,
            "createdAt": isoformat(self.created_at),
            "retriedAt": isoformat(self.retried_at),
        }
