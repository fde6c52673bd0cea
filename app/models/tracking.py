"""Columns every unit of background work carries: status, attempts, lease, error, timings."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.statuses import WorkStatus


class TrackedWork:
    """Mixin for a row that one job at a time works on, under a lease, fenced by a token."""

    if TYPE_CHECKING:  # each model declares its own primary key, an int or a str
        id: Mapped[int | str]

    status: Mapped[str] = mapped_column(String(16), default=WorkStatus.PENDING)
    progress: Mapped[int] = mapped_column(default=0)
    job_id: Mapped[str | None] = mapped_column(String(120))
    attempts: Mapped[int] = mapped_column(default=0)  # attempts started
    failed_attempts: Mapped[int] = mapped_column(default=0)
    worker_losses: Mapped[int] = mapped_column(default=0)
    # Fencing token of the attempt that holds the row; a stale attempt cannot write.
    claim_token: Mapped[str | None] = mapped_column(String(32))
    lease_expires_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)
    error_category: Mapped[str | None] = mapped_column(String(32))
    traceback: Mapped[str | None] = mapped_column(Text)
    queued_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    duration_ms: Mapped[int | None]
    # The rate limit: while the attempt waits for a slot, when the next slot is expected (NULL
    # when not waiting); and the time this attempt has waited in all, so durations split into
    # waiting and working.
    rate_limit_next_slot_at: Mapped[datetime | None]
    rate_limit_waited_ms: Mapped[int] = mapped_column(default=0)

    @property
    def waiting_for_rate_limit(self) -> bool:
        return self.status == WorkStatus.RUNNING and self.rate_limit_next_slot_at is not None

    @property
    def work_ms(self) -> int | None:
        """The finished attempt's time spent working: its duration less its waits."""
        return (
            None if self.duration_ms is None else max(0, self.duration_ms - (self.rate_limit_waited_ms or 0))
        )
