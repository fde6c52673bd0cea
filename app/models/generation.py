"""What both pipelines record of their generator calls: a row per call, and the memo of answers."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.database import utcnow
from app.extensions import Model


class GeneratorCall(Model):
    """One call to the content generator: when, for what, how long, which model, how many
    tokens the provider reported, and whether a stored answer was reused instead."""

    __tablename__ = "generator_calls"
    __table_args__ = (Index("ix_generator_calls_called_at", "called_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    build_id: Mapped[str | None] = mapped_column(String(32), index=True)
    step_id: Mapped[int | None] = mapped_column(index=True)
    workflow_id: Mapped[str | None] = mapped_column(String(32), index=True)
    module_id: Mapped[int | None]
    kind: Mapped[str] = mapped_column(String(20))
    model: Mapped[str | None] = mapped_column(String(120))
    prompt_tokens: Mapped[int] = mapped_column(default=0)
    completion_tokens: Mapped[int] = mapped_column(default=0)
    memo_hit: Mapped[bool] = mapped_column(default=False)
    called_at: Mapped[datetime] = mapped_column(default=utcnow)
    waited_ms: Mapped[int] = mapped_column(default=0)  # for a slot in the rate limit
    duration_ms: Mapped[int | None]


class GenerationMemo(Model):
    """A model's valid answer, keyed by a hash of (provider, model, prompt template version,
    input): a retried or re-delivered step reuses it instead of paying for the call again."""

    __tablename__ = "generation_memos"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    model: Mapped[str] = mapped_column(String(120))
    answer: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
