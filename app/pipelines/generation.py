"""Every generator call goes through here: the shared limits, then a record of the call."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from flask import current_app
from sqlalchemy import case, insert, update

from app.extensions import db
from app.generators import Generator, build_generator
from app.jobs.limiter import wait_for_slot
from app.models import BuildJob, GeneratorCall

T = TypeVar("T")


def call_generator(kind: str, call: Callable[[Generator], T], fresh: bool = False, **ids: Any) -> T:
    """Make one generation with the configured generator, within the shared limits, and record
    it with `ids` (build_id, step_id, workflow_id, module_id), the model and the tokens used."""
    config = current_app.config
    generator = build_generator(config, fresh=fresh)
    asked = time.time()
    # A generator that talks to a provider takes a slot per HTTP request itself.
    admitted = asked if getattr(generator, "self_limiting", False) else wait_for_slot(config)
    started = time.monotonic()
    try:
        return call(generator)
    finally:
        usage = getattr(generator, "usage", None)
        record = {
            "model": usage.model if usage else config["GENERATOR"],
            "prompt_tokens": usage.prompt_tokens if usage else 0,
            "completion_tokens": usage.completion_tokens if usage else 0,
            "memo_hit": usage.memo_hit if usage else False,
        }
        with db.engine.begin() as conn:  # its own transaction: the caller's stays untouched
            conn.execute(
                insert(GeneratorCall).values(
                    kind=kind,
                    called_at=datetime.fromtimestamp(admitted, UTC).replace(tzinfo=None),
                    waited_ms=max(0, int((admitted - asked) * 1000)),
                    duration_ms=int((time.monotonic() - started) * 1000),
                    **record,
                    **ids,
                )
            )
            if ids.get("build_id"):
                conn.execute(_add_to_build_usage(ids["build_id"], **record))


def _add_to_build_usage(
    build_id: str, model: str, prompt_tokens: int, completion_tokens: int, memo_hit: bool
) -> Any:
    """Add one call to the build's usage counters in SQL (no read-modify-write)."""
    listed = f",{model},"
    models = BuildJob.usage_models
    return (
        update(BuildJob)
        .where(BuildJob.id == build_id)
        .values(
            usage_calls=BuildJob.usage_calls + 1,
            usage_memo_hits=BuildJob.usage_memo_hits + int(memo_hit),
            usage_prompt_tokens=BuildJob.usage_prompt_tokens + prompt_tokens,
            usage_completion_tokens=BuildJob.usage_completion_tokens + completion_tokens,
            usage_models=case(
                (models.contains(listed, autoescape=True), models),
                (models == "", listed),
                else_=models + listed[1:],
            ),
        )
    )
