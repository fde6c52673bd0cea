"""The workers alive right now, the queues they serve and the job each is running."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import render_template
from flask.typing import ResponseReturnValue
from redis.exceptions import RedisError
from rq import Worker

from app.admin import bp
from app.jobs.queues import get_redis
from app.jobs.runner import WORKER_TTL_S

# RQ's worker states in words; a worker that has not reported one yet is still starting ("?").
WORKER_STATES = {"idle": "idle", "busy": "busy", "suspended": "suspended"}
# An idle RQ worker blocks on BLPOP for worker_ttl - 15 s and reports after each wait.
IDLE_HEARTBEAT_S = WORKER_TTL_S - 15


def _seconds_since(moment: datetime | None, now: datetime) -> float | None:
    return (now - moment.replace(tzinfo=UTC)).total_seconds() if moment else None


@bp.get("/workers")
def workers() -> ResponseReturnValue:
    """List live workers, the queues they serve and the job each is running."""
    try:
        found = Worker.all(connection=get_redis())
        error = None
    except RedisError as exc:
        found, error = [], f"Redis is unavailable: {exc}"
    now = datetime.now(UTC)
    rows = [
        {
            "name": w.name,
            "hostname": w.hostname,
            "pid": w.pid,
            "queues": w.queue_names(),
            "state": WORKER_STATES.get(str(w.get_state()), "starting"),
            "job": w.get_current_job_id(),
            "heartbeat_s": _seconds_since(w.last_heartbeat, now),
        }
        for w in sorted(found, key=lambda w: (w.queue_names(), w.name))
    ]
    return render_template(
        "admin/workers.html", workers=rows, error=error, report_every_s=IDLE_HEARTBEAT_S, ttl_s=WORKER_TTL_S
    )
