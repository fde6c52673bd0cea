"""The recovery sweep: find work the database says is owed but no live worker holds.

Every worker process runs it on start and then every JOB_RECOVERY_INTERVAL_S; a Redis lock
keeps two workers from sweeping at the same moment. A step whose worker died is run again
within JOB_LEASE_TTL_S + JOB_RECOVERY_INTERVAL_S (40 s by default) of its last lease renewal.
"""

from __future__ import annotations

import logging
import threading

from flask import Flask

from app.extensions import db
from app.jobs.queues import get_redis
from app.jobs.retention import clean_registries

log = logging.getLogger(__name__)

LOCK_KEY = "curriculum-builder:recovery-lock"


def reconcile_all() -> int:
    """One sweep over every pipeline; returns how many jobs it queued."""
    from app.pipelines.build_recovery import reconcile_builds
    from app.pipelines.lesson_plans import reconcile_lesson_plan_runs

    try:
        return reconcile_lesson_plan_runs() + reconcile_builds()
    finally:
        db.session.remove()


def sweep_once(app: Flask) -> int:
    """Sweep unless another worker holds the lock for this interval."""
    with app.app_context():
        interval = app.config["JOB_RECOVERY_INTERVAL_S"]
        if not get_redis().set(LOCK_KEY, "1", nx=True, px=max(1, int(interval * 900))):
            return 0
        queued = reconcile_all()
        clean_registries(get_redis())
        if queued:
            log.info("recovery: queued %s job(s)", queued)
        return queued


def start_recovery_thread(app: Flask, stop: threading.Event) -> threading.Thread:
    """Sweep now and then every interval until `stop` is set."""

    def _loop() -> None:
        while True:
            try:
                sweep_once(app)
            except Exception:  # Redis or the database away: try again next interval
                log.warning("recovery sweep failed", exc_info=True)
            if stop.wait(app.config["JOB_RECOVERY_INTERVAL_S"]):
                return

    thread = threading.Thread(target=_loop, name="recovery", daemon=True)
    thread.start()
    return thread
