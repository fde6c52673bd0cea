"""A build's event log, as rows."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from app.database import isoformat, utcnow
from app.extensions import Model


class BuildEvent(Model):
    """Append-only: what the activity log shows and the SSE stream replays by id."""

    __tablename__ = "build_events"
    __table_args__ = (Index("ix_build_events_build_id_id", "build_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    build_id: Mapped[str] = mapped_column(ForeignKey("build_jobs.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(16))  # progress | error | completed
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "buildId": self.build_id,
            "type": self.type,
            "data": self.data,
            "timestamp": isoformat(self.created_at),
        }
