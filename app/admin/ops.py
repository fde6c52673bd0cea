"""Dead letters (with retry) and the workers alive right now."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import flash, redirect, render_template, url_for
from redis.exceptions import RedisError
from rq import Worker
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from app.admin import bp
from app.extensions import db
from app.jobs.queues import get_redis
from app.jobs.runner import WORKER_TTL_S
from app.models import DeadLetter
from app.pipelines.learning_paths import control as build_control


@bp.get("/dead-letters")
def dead_letters():  # type: ignore[no-untyped-def]
    """List the steps that failed for good, newest first."""
    letters = db.session.scalars(
        select(DeadLetter).options(selectinload(DeadLetter.step)).order_by(DeadLetter.id.desc()).limit(200)
    ).all()
    return render_template("admin/dead_letters.html", letters=letters)


@bp.post("/dead-letters/<int:letter_id>/retry")
def retry_dead_letter(letter_id: int):  # type: ignore[no-untyped-def]
    """Run one dead step again."""
    letter = db.get_or_404(DeadLetter, letter_id)
    try:
        build_control.retry_dead_letter(letter)
        flash(f"Dead letter {letter_id}: step queued again.")
    except (
        build_control.InvalidTransition,
        build_control.BuildConflict,
        build_control.QuotaExceeded,
    ) as exc:
        flash(f"Dead letter {letter_id}: {exc}")
    return redirect(url_for("admin.dead_letters"))


# RQ's worker states in words; a worker that has not reported one yet is still starting ("?").
WORKER_STATES = {"idle": "idle", "busy": "busy", "suspended": "suspended"}
# An idle RQ worker blocks on BLPOP for worker_ttl - 15 s and reports after each wait.
IDLE_HEARTBEAT_S = WORKER_TTL_S - 15


def _seconds_since(moment: datetime | None, now: datetime) -> float | None:
    return (now - moment.replace(tzinfo=UTC)).total_seconds() if moment else None


@bp.get("/workers")
def workers():  # type: ignore[no-untyped-def]
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
