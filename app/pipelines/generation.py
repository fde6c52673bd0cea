"""Every generator call goes through here: the shared rate limit, then a record of the call."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

from flask import current_app
from sqlalchemy import insert

from app.extensions import db
from app.jobs.limiter import wait_for_slot
from app.models import GeneratorCall

T = TypeVar("T")


def call_generator(
    kind: str, call: Callable[[], T], build_id: str | None = None, step_id: int | None = None
) -> T:
    """Wait for a slot in the provider's rate limit, make the call, and record it."""
    asked = time.time()
    admitted = wait_for_slot(current_app.config)
    called_at = datetime.fromtimestamp(admitted, UTC).replace(tzinfo=None)
    started = time.monotonic()
    try:
        return call()
    finally:
        with db.engine.begin() as conn:  # its own transaction: the caller's stays untouched
            conn.execute(
                insert(GeneratorCall).values(
                    kind=kind,
                    build_id=build_id,
                    step_id=step_id,
                    called_at=called_at,
                    waited_ms=max(0, int((admitted - asked) * 1000)),
                    duration_ms=int((time.monotonic() - started) * 1000),
                )
            )
