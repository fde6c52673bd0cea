"""Run RQ workers inside the app: a fresh app context per job, restarts after a Redis outage."""

from __future__ import annotations

import logging
import signal
import threading
import time
from types import FrameType

from flask import Flask
from redis.exceptions import RedisError
from rq import Queue, SimpleWorker
from rq.job import Job

from app.jobs.lease import interrupt_for_shutdown, interrupt_waiting_for_shutdown
from app.jobs.queues import ALL_QUEUES, connect_redis
from app.jobs.recovery import start_recovery_thread
from app.jobs.scheduling import start_scheduler_thread
from app.logs import log_context

log = logging.getLogger(__name__)

RESTART_DELAY_S = (0.5, 1, 2, 5)
SHUTDOWN_MARGIN_S = 1.5
# RQ blocks on BLPOP for worker_ttl - 15 s; the socket must wait longer than that, or the
# work loop dies of a read timeout every few seconds on an idle queue.
WORKER_TTL_S = 420
WORKER_SOCKET_TIMEOUT_S = WORKER_TTL_S + 30


class AppWorker(SimpleWorker):
    """Runs each job in the worker process (no fork: ~4 ms a job instead of ~19 ms) inside
    its own app context, so every job starts with a fresh database session.

    On SIGTERM it finishes the job in hand (RQ's warm shutdown); if that takes longer than the
    grace period (WORKER_SHUTDOWN_TIMEOUT_S less a margin for the supervisor's SIGKILL), the
    job is interrupted and its work put back in the queue, not failed."""

    app: Flask
    _grace_timer: threading.Timer | None = None

    def request_stop(self, signum: int, frame: FrameType | None) -> None:
        if self._grace_timer is None:
            grace = max(0.5, self.app.config["WORKER_SHUTDOWN_TIMEOUT_S"] - SHUTDOWN_MARGIN_S)
            self._grace_timer = threading.Timer(grace, interrupt_for_shutdown)
            self._grace_timer.daemon = True
            self._grace_timer.start()
        try:
            super().request_stop(signum, frame)  # type: ignore[no-untyped-call]  # RQ left it unannotated
        finally:  # after RQ noted the stop: the interrupt may land as soon as this returns
            interrupt_waiting_for_shutdown()

    def execute_job(self, job: Job, queue: Queue) -> None:
        with self.app.app_context(), log_context(job=job.id, queue=queue.name):
            super().execute_job(job, queue)


def run_worker(
    app: Flask, queue_names: tuple[str, ...] = ALL_QUEUES, recovery: bool = True, scheduling: bool = True
) -> None:
    """Serve `queue_names` until SIGTERM or SIGINT; the job in hand is finished first. Unless
    a supervisor does it, this process also runs the recovery sweep and RQ's scheduler.

    RQ's work loop quits on some Redis errors; while no stop was asked for, it is started
    again, so a Redis restart costs a few seconds, not the worker.
    """
    stopping = threading.Event()
    helpers = [start_recovery_thread(app, stopping)] if recovery else []
    if scheduling:
        helpers.append(start_scheduler_thread(app, stopping))
    failures = 0
    while not stopping.is_set():
        worker = None
        try:
            worker = _new_worker(app, queue_names)
            worker.work(with_scheduler=False, logging_level=app.config["LOG_LEVEL"])
            failures = 0
        except RedisError as exc:
            log.warning("worker: Redis unavailable (%s)", exc)
        except Exception:
            log.exception("worker: the work loop failed")
        if worker is not None and (worker._stop_requested or worker._shutdown_requested_date):
            break
        _install_stop_handlers(stopping)  # RQ's handlers are gone with its loop
        delay = RESTART_DELAY_S[min(failures, len(RESTART_DELAY_S) - 1)]
        failures += 1
        log.info("worker: work loop ended; starting it again in %ss", delay)
        stopping.wait(delay)
    stopping.set()
    for helper in helpers:
        helper.join(timeout=5)
    log.info("worker: stopped")


def _new_worker(app: Flask, queue_names: tuple[str, ...]) -> AppWorker:
    redis = connect_redis(app.config, socket_timeout=WORKER_SOCKET_TIMEOUT_S)
    worker = AppWorker(
        [Queue(name, connection=redis) for name in queue_names],
        connection=redis,
        worker_ttl=WORKER_TTL_S,
    )
    worker.app = app
    return worker


def _install_stop_handlers(stopping: threading.Event) -> None:
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())


def wait_for_redis(app: Flask, timeout_s: float = 30) -> None:
    """Block until Redis answers, so a worker started with it doesn't crash-loop."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            app.extensions["redis"].ping()
            return
        except RedisError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
