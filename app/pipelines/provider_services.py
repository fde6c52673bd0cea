"""The services a provider-backed generator is given by the pipelines: the shared limiter, the
answer memo in the database and notes in Redis (which response format a server takes)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from redis.exceptions import RedisError
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from app.extensions import db
from app.jobs import limiter
from app.jobs.queues import get_redis
from app.models import GenerationMemo


class PipelineProviderServices:
    def __init__(self, config: Mapping[str, Any]) -> None:
        self.config = config

    def wait_for_slot(self, tokens: int) -> None:
        limiter.wait_for_slot(self.config, tokens=tokens)

    def pause_calls(self, seconds: float) -> None:
        limiter.pause_calls(self.config, seconds)

    def charge_tokens(self, tokens: int) -> None:
        limiter.charge_tokens(self.config, tokens)

    def recall_answer(self, key: str) -> str | None:
        """On a connection of its own, returned at once: the step's session holds none while it
        waits on the model (see `pipelines.generation.release_connection`)."""
        with db.engine.connect() as conn:
            return conn.execute(select(GenerationMemo.answer).where(GenerationMemo.key == key)).scalar()

    def remember_answer(self, key: str, kind: str, model: str, answer: str) -> None:
        """Its own commit: a crash right after this costs no second call."""
        insert = pg_insert if db.engine.dialect.name == "postgresql" else sqlite_insert
        statement = insert(GenerationMemo).values(key=key, kind=kind, model=model, answer=answer)
        with db.engine.begin() as conn:
            conn.execute(statement.on_conflict_do_nothing(index_elements=["key"]))

    def read_note(self, key: str) -> str | None:
        try:
            stored = cast(bytes | None, get_redis().get(key))
        except RedisError:
            return None
        return stored.decode() if stored else None

    def write_note(self, key: str, value: str, ttl_s: int) -> None:
        try:
            get_redis().set(key, value, ex=ttl_s)
        except RedisError:
            pass  # best effort: each process finds out for itself
