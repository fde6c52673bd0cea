"""Server-Sent Events for a build (progress, error, completed) and for a workflow's lesson-plan
run (progress, module_completed, error, completed), replayable by id.

The event log lives in the database. A stream reads it when the process's one doorbell
subscription says its build changed (plus a slow safety poll), so an idle stream costs neither
queries nor a thread (gunicorn runs gevent workers: see docs/PERFORMANCE.md). A stream of a build
already final sends what was missed and ends; any other ends after SSE_MAX_STREAM_S, and the
browser reconnects with Last-Event-ID (after `retry:` ms) without losing an event.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable, Generator, Iterator
from typing import Any

from flask import Response, current_app, g, request, stream_with_context
from flask.typing import ResponseReturnValue
from redis.exceptions import RedisError
from sqlalchemy import select

from app.api import bp
from app.api.loaders import load_build, load_workflow
from app.errors import ApiError, error_response
from app.extensions import db
from app.inputs import bounded_int
from app.jobs.queues import get_redis
from app.models import Build, BuildEvent, LessonPlanRun, RunEvent, RunStatus
from app.models.statuses import FINAL_BUILD
from app.pipelines.doorbell import EVERY, BuildDoorbell
from app.pipelines.learning_paths.events import events_after
from app.pipelines.lesson_plans import events as run_events
from app.pipelines.stream_slots import StreamSlot
from app.seed_names import event_json

log = logging.getLogger(__name__)

RETRY_MS = 2000  # how long a browser waits before it reconnects
PAGE = 500  # events read at a time
QUEUE_COALESCE_S = 1.0  # the admin queue's stream: at most one `changed` a second


# (after id, whether to read the status) -> (whether final, [(id, type, text)])
Reader = Callable[[int, bool], tuple[bool, list[tuple[int, str, str]]]]


def _format(event: BuildEvent | RunEvent) -> str:
    return f"id: {event.id}\nevent: {event.type}\ndata: {json.dumps(event_json(event.to_dict()))}\n\n"


def _last_event_id() -> int:
    raw = request.headers.get("Last-Event-ID") or request.args.get("lastEventId") or "0"
    last_id = bounded_int(raw)
    if last_id is None:
        raise ApiError(400, "invalid_last_event_id", "Last-Event-ID must be an event id (a whole number).")
    return last_id


def _read(build_id: str, after_id: int, with_status: bool = True) -> tuple[bool, list[tuple[int, str, str]]]:
    """Whether the build is final (if asked), then its events after `after_id` as (id, type,
    text): read in that order, so a final build's events are all there."""
    status = db.session.scalar(select(Build.status).where(Build.id == build_id)) if with_status else ""
    events = [(e.id, e.type, _format(e)) for e in events_after(build_id, after_id, limit=PAGE)]
    # End the read, so the next one sees new rows, and give the connection back: nothing read
    # is touched after this, or an expired row would take a connection for the whole wait.
    db.session.commit()
    return status is None or status in FINAL_BUILD, events


def _read_run(
    run_id: str, after_id: int, with_status: bool = True
) -> tuple[bool, list[tuple[int, str, str]]]:
    """As _read, for a lesson-plan run."""
    status = (
        db.session.scalar(select(LessonPlanRun.status).where(LessonPlanRun.id == run_id))
        if with_status
        else ""
    )
    events = [(e.id, e.type, _format(e)) for e in run_events.events_after(run_id, after_id, limit=PAGE)]
    db.session.commit()
    return status is None or (with_status and status != RunStatus.RUNNING), events


class _EventStream:
    """One viewer's stream: its position in the log, its bell, its slot and its deadlines."""

    def __init__(
        self, key: str, read: Reader, last_id: int, slot: StreamSlot | None, config: dict[str, Any]
    ) -> None:
        self.key, self.read, self.last_id, self.slot = key, read, last_id, slot
        self.keepalive_s = config["SSE_KEEPALIVE_S"]
        self.safety_poll_s = config["SSE_SAFETY_POLL_S"]
        now = time.monotonic()
        # Spread over the last quarter of the lifetime, so viewers who all came at once (after a
        # deploy) do not all reconnect at once.
        self.deadline = now + config["SSE_MAX_STREAM_S"] * random.uniform(0.75, 1.0)
        self.quiet_since = self.renewed_at = now

    def run(self, doorbell: BuildDoorbell) -> Iterator[str]:
        try:
            yield f"retry: {RETRY_MS}\n\n"
            with doorbell.bell(self.key) as bell:  # before the first read: no ring is missed
                with_status = True
                while True:
                    bell.clear()
                    final, events = self.read(self.last_id, with_status)
                    for event_id, _, text in events:
                        yield text
                        self.last_id = event_id
                    if events:
                        self.quiet_since = time.monotonic()
                    if len(events) == PAGE:
                        with_status = True  # one query more is nothing beside 500 events
                        continue
                    if final:
                        return
                    # A build turns final with a `completed` event: only then (and at the first
                    # read, and at each safety poll) is its status worth a query.
                    with_status = any(kind == "completed" for _, kind, _ in events)
                    if with_status:
                        continue
                    if doorbell.closing:  # its ring may have come before this pass's clear()
                        return
                    woke = yield from self._wait(bell)
                    if woke is None or doorbell.closing:
                        return  # lifetime over, or the server stopping: the browser reconnects
                    #           with Last-Event-ID and loses nothing
                    with_status = woke == "safety poll"
        finally:
            if self.slot is not None:
                _quietly(self.slot.release)

    def _wait(self, bell: threading.Event) -> Generator[str, None, str | None]:
        """Keep-alives until the bell rings or the safety poll is due (which of them), or the
        stream's lifetime is over (None)."""
        poll_due = time.monotonic() + self.safety_poll_s
        while True:
            now = time.monotonic()
            self._renew_slot(now)
            if now >= self.deadline:
                return None
            if now >= poll_due:
                return "safety poll"
            wake_at = min(self.deadline, poll_due, self.quiet_since + self.keepalive_s)
            if bell.wait(max(0.0, wake_at - now)):
                return "bell"
            if time.monotonic() >= self.quiet_since + self.keepalive_s:
                yield ": keep-alive\n\n"  # also how a gone client is noticed
                self.quiet_since = time.monotonic()

    def _renew_slot(self, now: float) -> None:
        if self.slot is not None and now - self.renewed_at >= self.keepalive_s:
            _quietly(self.slot.renew)
            self.renewed_at = now


def _quietly(action: Any) -> None:
    """A slot left behind lapses on its own: Redis being away must not end a stream."""
    try:
        action()
    except RedisError as exc:
        log.warning("stream slot not updated: %s", exc)


def _claim_slot(user_id: int) -> StreamSlot | Response:
    """A place among the user's open streams, or the 429 to answer."""
    config = current_app.config
    slot = StreamSlot(get_redis(), user_id, lapse_s=3 * config["SSE_KEEPALIVE_S"])
    cap = config["SSE_MAX_STREAMS_PER_USER"]
    if slot.claim(cap):
        return slot
    response, _ = error_response(
        429,
        "too_many_streams",
        f"You already have {cap} event streams open; close one before opening another.",
    )
    response.status_code = 429
    response.headers["Retry-After"] = str(RETRY_MS // 1000)
    return response


def _event_stream(key: str, read: Reader, user_id: int) -> Response:
    """What a stream route answers: 204 once nothing more will come, the cap's 429, or the stream."""
    last_id = _last_event_id()
    final, missed = read(last_id, True)
    if final and not missed:
        return Response(status=204)  # nothing more will come: EventSource stops reconnecting
    slot = None if final else _claim_slot(user_id)
    if isinstance(slot, Response):
        return slot
    stream = _EventStream(key, read, last_id, slot, current_app.config)
    doorbell = current_app.extensions["build_doorbell"]
    response = Response(stream_with_context(stream.run(doorbell)), mimetype="text/event-stream")
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Accel-Buffering"] = "no"
    return response


@bp.get("/jobs/<build_id>/stream")
def stream_build(build_id: str) -> ResponseReturnValue:
    """Stream the build's events; Last-Event-ID (or ?lastEventId=) resumes after that id."""
    build_id, user_id = load_build(build_id).id, g.user.id  # read before _read's commit expires them
    return _event_stream(build_id, lambda after, with_status: _read(build_id, after, with_status), user_id)


@bp.get("/v3/workflow/<workflow_id>/step10/stream")
def stream_run(workflow_id: str) -> ResponseReturnValue:
    """Stream the events of the workflow's latest lesson-plan run (Last-Event-ID resumes); 204
    when it has none, or it ended and nothing was missed."""
    workflow_id, user_id = load_workflow(workflow_id).id, g.user.id
    run_id = db.session.scalar(
        select(LessonPlanRun.id)
        .where(LessonPlanRun.workflow_id == workflow_id)
        .order_by(LessonPlanRun.created_at.desc())
        .limit(1)
    )
    if run_id is None:
        return Response(status=204)
    key = run_events.doorbell_key(run_id)
    return _event_stream(key, lambda after, with_status: _read_run(run_id, after, with_status), user_id)


def _queue_changes(doorbell: BuildDoorbell, slot: StreamSlot, config: dict[str, Any]) -> Iterator[str]:
    """`changed` whenever any build or run has new events (at most one a QUEUE_COALESCE_S: a
    burst is one refresh), keep-alives between, until the stream's lifetime is over."""
    keepalive_s = config["SSE_KEEPALIVE_S"]
    deadline = time.monotonic() + config["SSE_MAX_STREAM_S"] * random.uniform(0.75, 1.0)
    try:
        yield f"retry: {RETRY_MS}\n\n"
        with doorbell.bell(EVERY) as bell:
            while (left := deadline - time.monotonic()) > 0:
                if bell.wait(min(keepalive_s, left)):
                    bell.clear()
                    yield "event: changed\ndata: {}\n\n"
                    time.sleep(QUEUE_COALESCE_S)
                else:
                    yield ": keep-alive\n\n"
                _quietly(slot.renew)
    finally:
        _quietly(slot.release)


@bp.get("/admin/queue/stream")
def stream_queue() -> ResponseReturnValue:
    """Admins: a `changed` event whenever the job queue may have changed (one stream per page)."""
    if not g.user.is_admin:
        raise ApiError(403, "forbidden", "The job queue's stream is for admins.")
    user_id = g.user.id
    db.session.commit()  # give the connection back: the stream reads nothing from the database
    slot = _claim_slot(user_id)
    if isinstance(slot, Response):
        return slot
    doorbell = current_app.extensions["build_doorbell"]
    changes = _queue_changes(doorbell, slot, current_app.config)
    response = Response(stream_with_context(changes), mimetype="text/event-stream")
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Accel-Buffering"] = "no"
    return response
