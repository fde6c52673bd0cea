"""Server-Sent Events for a build: progress, error and completed events, replayable by id.

The event log lives in the database; Redis pub/sub only rings when a worker (on any machine)
appends to it, so a browser on any web process hears at once, and a reconnect with
Last-Event-ID replays exactly what it missed. The stream ends after the final event.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

from flask import Response, request, stream_with_context
from redis.exceptions import RedisError

from app.api import bp
from app.api.jobs import load_build
from app.errors import ApiError
from app.extensions import db
from app.inputs import bounded_int
from app.jobs.queues import get_redis
from app.models import BuildEvent, BuildJob
from app.models.builds import FINAL_BUILD
from app.pipelines.build_events import channel, events_after

KEEPALIVE_S = 15.0
POLL_S = 2.0  # the database is read this often even if no doorbell rang


def _format(event: BuildEvent) -> str:
    return f"id: {event.id}\nevent: {event.type}\ndata: {json.dumps(event.to_dict())}\n\n"


def _last_event_id() -> int:
    raw = request.headers.get("Last-Event-ID") or request.args.get("lastEventId") or "0"
    last_id = bounded_int(raw)
    if last_id is None:
        raise ApiError(400, "invalid_last_event_id", "Last-Event-ID must be an event id (a whole number).")
    return last_id


def _is_final(build_id: str) -> bool:
    return db.session.get(BuildJob, build_id, populate_existing=True).status in FINAL_BUILD


def _events(build_id: str, last_id: int) -> Iterator[str]:
    pubsub = get_redis().pubsub(ignore_subscribe_messages=True)
    try:
        pubsub.subscribe(channel(build_id))  # before the first read, so no append is missed
    except RedisError:
        pubsub = None
    idle = 0.0
    try:
        while True:
            events = events_after(build_id, last_id)
            db.session.commit()  # end the read, so the next one sees new rows
            for event in events:
                yield _format(event)
                last_id = event.id
                if event.type == "completed" and _is_final(build_id):
                    return
            if events:
                idle = 0.0
                continue
            rang = _wait(pubsub)
            idle = 0.0 if rang else idle + POLL_S
            if idle >= KEEPALIVE_S:
                idle = 0.0
                yield ": keep-alive\n\n"
    finally:
        if pubsub is not None:
            pubsub.close()


def _wait(pubsub) -> bool:  # type: ignore[no-untyped-def]
    """Wait up to POLL_S for the doorbell; True if it rang."""
    if pubsub is None:
        time.sleep(POLL_S)
        return False
    try:
        return pubsub.get_message(timeout=POLL_S) is not None
    except RedisError:
        return False


@bp.get("/jobs/<job_id>/stream")
def stream_job(job_id: str):  # type: ignore[no-untyped-def]
    """Stream the build's events; Last-Event-ID (or ?lastEventId=) resumes after that id."""
    build = load_build(job_id)
    response = Response(
        stream_with_context(_events(build.id, _last_event_id())), mimetype="text/event-stream"
    )
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Accel-Buffering"] = "no"
    return response
