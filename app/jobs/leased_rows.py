"""Leases renewed in bulk: every claim a process holds on one table, in one statement a round
(the lease keeper's `LeaseKind` for tracked rows), on a small pool of its own."""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Hashable, Iterator
from dataclasses import dataclass
from datetime import timedelta

from flask import current_app
from sqlalchemy import ColumnElement, create_engine, select, tuple_, update
from sqlalchemy.engine import Engine

from app.database import utcnow
from app.extensions import db
from app.models.statuses import WorkStatus
from app.models.tracking import TrackedWork


@dataclass(frozen=True)
class LeasedRows:
    """The leases of one table's running rows (on one engine), renewed and watched for all the
    process's claims in one statement: keys are (row id, claim token)."""

    engine: Engine
    model: type[TrackedWork]
    ttl: timedelta

    def renew(self, keys: list[Hashable]) -> tuple[set[Hashable], set[Hashable]]:
        """Renew without waiting for a row lock: a row another transaction holds (its own
        progress or store, on PostgreSQL) is skipped and reported busy, to be tried again next
        round. Waiting for it while holding the other rows' locks deadlocked with stores, which
        lock a step, then its parent and its build."""
        renewed: set[Hashable] = set()
        model = self.model
        with self.engine.begin() as conn:
            for chunk in _chunks(keys):
                free = select(model.id).where(self._running(chunk)).with_for_update(skip_locked=True)
                rows = conn.execute(
                    update(model)
                    .where(model.id.in_(free), self._running(chunk))
                    .values(lease_expires_at=utcnow() + self.ttl)
                    .returning(model.id, model.claim_token)
                ).all()
                renewed.update((row_id, token) for row_id, token in rows)
        left = [key for key in keys if key not in renewed]
        return renewed, self.wanted(left) if left else set()

    def wanted(self, keys: list[Hashable]) -> set[Hashable]:
        wanted: set[Hashable] = set()
        with self.engine.connect() as conn:
            for chunk in _chunks(keys):
                rows = conn.execute(
                    select(self.model.id, self.model.claim_token).where(self._running(chunk))
                ).all()
                wanted.update((row_id, token) for row_id, token in rows)
        return wanted

    def _running(self, keys: list[Hashable]) -> ColumnElement[bool]:
        """Still running under these claims (a row that ended needs no lease, and is not wanted)."""
        model = self.model
        return tuple_(model.id, model.claim_token).in_(keys) & (model.status == WorkStatus.RUNNING)


_lease_engines: weakref.WeakKeyDictionary[Engine, Engine] = weakref.WeakKeyDictionary()
_lease_engines_lock = threading.Lock()


def lease_engine() -> Engine:
    """The lease keeper's own small pool on the app's database. Its renewals must not wait for a
    connection behind the steps of its process: with a hundred steps in flight sharing the
    process's pool, they did, for seconds at a time, until leases lapsed under live work.
    It lives as long as the app's engine."""
    engine = db.engine
    with _lease_engines_lock:
        if engine not in _lease_engines:
            options = {
                **current_app.config.get("SQLALCHEMY_ENGINE_OPTIONS", {}),
                "pool_size": 1,
                "max_overflow": 1,
            }
            lease_engine = create_engine(engine.url, **options)
            weakref.finalize(engine, lease_engine.dispose)
            _lease_engines[engine] = lease_engine
        return _lease_engines[engine]


# A forked child opens its own connections (the parent's are not the child's to use).
os.register_at_fork(after_in_child=_lease_engines.clear)


def _chunks(keys: list[Hashable], size: int = 400) -> Iterator[list[Hashable]]:
    """Two bound parameters a key: well under any database's limit per statement."""
    for start in range(0, len(keys), size):
        yield keys[start : start + size]
