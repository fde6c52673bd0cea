"""A build's event log: rows in the database (the truth, replayable by id) and a doorbell
on Redis pub/sub so an SSE stream on any web process hears of new rows at once."""

from __future__ import annotations

import logging
from functools import cache
from typing import Any

from redis.exceptions import RedisError
from sqlalchemy import Select, bindparam, select

from app.extensions import db
from app.jobs.queues import get_redis
from app.models import BuildEvent
from app.pipelines.doorbell import DOORBELL_CHANNEL

log = logging.getLogger(__name__)


# One channel for every build: a web process holds one subscription, whatever it streams.


def add_event(build_id: str, type_: str, **data: Any) -> None:
    """In the caller's transaction: append an event (progress | error | completed)."""
    db.session.add(BuildEvent(build_id=build_id, type=type_, data=data))


def ring(build_id: str) -> None:
    """After a commit that added events: tell listeners to read the log again."""
    try:
        get_redis().publish(DOORBELL_CHANNEL, build_id)
    except RedisError:  # listeners also poll the database now and then
        log.debug("could not publish build %s events", build_id)


def events_after(build_id: str, after_id: int, limit: int = 500) -> list[BuildEvent]:
    return list(
        db.session.scalars(
            select(BuildEvent)
            .where(BuildEvent.build_id == build_id, BuildEvent.id > after_id)
            .order_by(BuildEvent.id)
            .limit(limit)
        )
    )


@cache
def _recent_events_query() -> Select[BuildEvent]:
    """Built once, as every poll of a build page runs it."""
    return (
        select(BuildEvent)
        .where(BuildEvent.build_id == bindparam("build_id"))
        .order_by(BuildEvent.id.desc())
        .limit(bindparam("count"))
    )


def recent_events(build_id: str, count: int = 20) -> list[BuildEvent]:
    """The last `count` events, newest first (the activity log)."""
    return list(db.session.scalars(_recent_events_query(), {"build_id": build_id, "count": count}))
