"""The recovery sweep: find work the database says is owed but no live worker holds.

Each `python worker.py` runs it on start and then every JOB_RECOVERY_INTERVAL_S (in the
supervisor, not in the slots it starts with --no-recovery); a Redis lock keeps two workers from
sweeping at the same moment. Each pipeline registers what it sweeps (`register_reconciler`).
A step whose worker died is run again
within JOB_LEASE_TTL_S + JOB_RECOVERY_INTERVAL_S (40 s by default) of its last lease renewal.

A different Redis server answering (a Sentinel failover, or a restart) may have missed the
last writes, so the first process to see it sweeps at once, not at the next interval.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, cast

from flask import Flask, current_app

from app.extensions import db
from app.jobs.queues import get_redis
from app.jobs.retention import clean_registries

log = logging.getLogger(__name__)

LOCK_KEY = "curriculum-builder:recovery-lock"
MASTER_SWEPT_KEY = "curriculum-builder:recovery-swept-master:{}"
MASTER_CHECK_S = 1.0


Reconciler = Callable[[], int]
RECONCILERS = "reconcilers"  # app.extensions key: what each pipeline registered


def register_reconciler(app: Flask, reconcile: Reconciler) -> None:
    """Add a pipeline's pass over its unfinished work (returning how many jobs it queued) to the
    sweep; the job machinery knows no pipeline, so each one registers itself at app start."""
    app.extensions.setdefault(RECONCILERS, []).append(reconcile)


def reconcile_all() -> int:
    """One sweep over every registered pipeline, in the order they registered; returns how many
    jobs it queued."""
    try:
        return sum(reconcile() for reconcile in current_app.extensions.get(RECONCILERS, []))
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


def current_master_id() -> str:
    """The run_id of the Redis server answering: a new one after a failover or a restart."""
    return cast(str, cast(dict[str, Any], get_redis().info("server"))["run_id"])


def sweep_for_new_master(app: Flask, master_id: str) -> int:
    """Sweep now, once per new master across every process (the interval lock may have been
    copied from the old master, so it is not asked)."""
    with app.app_context():
        swept_key = MASTER_SWEPT_KEY.format(master_id)
        if not get_redis().set(swept_key, "1", nx=True, ex=3600):
            return 0
        try:
            queued = reconcile_all()
        except Exception:
            get_redis().delete(swept_key)  # so the next look (here or elsewhere) sweeps again
            raise
        log.warning("recovery: a new Redis master (%s); swept at once, queued %s job(s)", master_id, queued)
        return queued


class RecoveryLoop:
    """Sweeps every interval, and at once when the Redis master changes."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.master_id: str | None = None
        self.next_sweep = 0.0

    def tick(self) -> None:
        with self.app.app_context():
            master_id = current_master_id()
        if self.master_id is not None and master_id != self.master_id:
            sweep_for_new_master(self.app, master_id)
        self.master_id = master_id
        if time.monotonic() >= self.next_sweep:
            self.next_sweep = time.monotonic() + self.app.config["JOB_RECOVERY_INTERVAL_S"]
            sweep_once(self.app)


def start_recovery_thread(app: Flask, stop: threading.Event) -> threading.Thread:
    """Sweep now and then every interval until `stop` is set; look for a new master every second."""
    recovery = RecoveryLoop(app)
    pause = min(MASTER_CHECK_S, app.config["JOB_RECOVERY_INTERVAL_S"])

    def _loop() -> None:
        failing = False
        while True:
            try:
                recovery.tick()
                failing = False
            except Exception:  # Redis or the database away: try again shortly, say so once
                if stop.is_set():  # shutting down: what it was doing is redone by the next sweep
                    return
                log.log(logging.DEBUG if failing else logging.WARNING, "recovery sweep failed", exc_info=True)
                failing = True
            if stop.wait(pause):
                return

    thread = threading.Thread(target=_loop, name="recovery", daemon=True)
    thread.start()
    return thread
