"""Many RQ workers in one process, one per thread: a job spends its life waiting on the model,
so a thread (~0.3 MB PSS) carries a job in flight instead of a process (~80 MB).

Each thread is a whole RQ worker (its own name, registration, heartbeat and pub/sub channel),
so rq-dashboard and /admin/workers list every slot (and /metrics counts its started jobs).
What RQ does with signals is done per thread instead: job timeouts by RQ's TimerDeathPenalty
(SIGALRM only reaches the main thread), cancel and shutdown by app.jobs.lease's per-thread
interrupts, and SIGTERM by the main thread, which asks every worker to stop after its job.
"""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any, cast

from flask import Flask
from redis.exceptions import RedisError
from rq.queue import Queue
from rq.timeouts import TimerDeathPenalty
from rq.utils import now

from app.jobs.lease import interrupt_for_shutdown, interrupt_waiting_for_shutdown
from app.jobs.queues import connect_redis
from app.jobs.recovery import start_recovery_thread
from app.jobs.runner import (
    RESTART_DELAY_S,
    SHUTDOWN_MARGIN_S,
    WORKER_SOCKET_TIMEOUT_S,
    WORKER_TTL_S,
    AppWorker,
)
from app.jobs.scheduling import start_scheduler_thread

log = logging.getLogger(__name__)

# An idle worker thread blocks on its queue this long at a time (RQ's own loop blocks ~7
# minutes), heartbeating between blocks. A stop wakes it at once (CLIENT UNBLOCK); this is only
# how long a missed wake-up can keep it. Polling every second cost 3 Redis round trips a second
# per idle thread: with hundreds of threads a process spent ~30% of its steps' throughput on it.
DEQUEUE_POLL_S = 10
Slot = tuple[tuple[str, ...], int]  # queues, and how many worker threads serve them


class _Woken(Exception):
    """A stop cut the wait for a job short."""


class ThreadWorker(AppWorker):
    """An RQ worker that runs in a thread of a process shared with other workers."""

    death_penalty_class = TimerDeathPenalty

    def _install_signal_handlers(self) -> None:
        """The process's main thread handles the signals, for every worker."""

    blocked_client_id: int | None = None  # this worker's Redis connection, while it waits for a job

    def dequeue_job_and_maintain_ttl(self, timeout: int | None, max_idle_time: int | None = None) -> Any:
        """Wait for a job in blocking pops of DEQUEUE_POLL_S, which `WorkerThreads._wake` cuts short."""
        while not self._stop_requested:
            # The worker's own client, used by this thread alone: its one connection blocks next.
            self.blocked_client_id = cast(int, self.connection.client_id())
            try:
                result = super().dequeue_job_and_maintain_ttl(DEQUEUE_POLL_S, DEQUEUE_POLL_S)
            except _Woken:
                return None
            finally:
                self.blocked_client_id = None
            if result is not None:
                return result
        return None

    def heartbeat(self, *args: Any, **kwargs: Any) -> Any:
        """RQ's wait loop heartbeats before each blocking pop, and pops again after a wake-up
        (it looks like a timeout to RQ) until its idle time is over: a stop ends the wait here."""
        if self._stop_requested and self.blocked_client_id is not None:
            raise _Woken
        return super().heartbeat(*args, **kwargs)

    def stop_after_current_job(self) -> None:
        """RQ's warm shutdown: finish the job in hand, take no other."""
        self._shutdown_requested_date = now()
        self._stop_requested = True


POOL_KEPT_MAX = 10  # connections a worker process keeps open at most
POOL_BURST_MAX = 20  # and opens beyond them in a burst of steps finishing together


def engine_options_for(threads: int) -> dict[str, Any]:
    """A database pool for the process's threads: a step holds a connection only for its short
    transactions, never while it waits on the limiter or the model (pipelines.generation), so a
    few cover hundreds of threads; capped, so PostgreSQL's max_connections stays small."""
    return {"pool_size": min(threads + 2, POOL_KEPT_MAX), "max_overflow": min(threads + 2, POOL_BURST_MAX)}


class WorkerThreads:
    """The worker threads of one process, stopped together."""

    def __init__(self, app: Flask, slots: list[Slot]) -> None:
        self.app = app
        self.slots = slots
        self.stopping = threading.Event()
        self._workers: list[ThreadWorker] = []
        self._lock = threading.Lock()
        self._grace_timer: threading.Timer | None = None

    def request_stop(self, _signum: int = signal.SIGTERM, _frame: object = None) -> None:
        """First signal: every worker finishes its job in hand, for the grace period; a second
        signal puts the jobs in hand back at once."""
        if self.stopping.is_set():
            interrupt_for_shutdown()
            return
        self.stopping.set()
        with self._lock:
            workers = list(self._workers)
        for worker in workers:
            worker.stop_after_current_job()
        threading.Thread(target=self._wake, args=(workers,), name="wake-idle-workers", daemon=True).start()
        interrupt_waiting_for_shutdown()
        grace = max(0.5, self.app.config["WORKER_SHUTDOWN_TIMEOUT_S"] - SHUTDOWN_MARGIN_S)
        self._grace_timer = threading.Timer(grace, interrupt_for_shutdown)
        self._grace_timer.daemon = True
        self._grace_timer.start()

    def _wake(self, workers: list[ThreadWorker]) -> None:
        """End the blocking pops of idle workers (as if they timed out), so they see the stop now."""
        blocked = [w.blocked_client_id for w in workers if w.blocked_client_id is not None]
        if not blocked:
            return
        try:
            redis = connect_redis(self.app.config)
            pipe = redis.pipeline(transaction=False)
            for client_id in blocked:
                pipe.client_unblock(client_id)
            pipe.execute()
            redis.close()
        except RedisError:  # Redis away: each notices at the end of its pop
            log.info("worker: could not wake the idle workers; they stop within %s s", DEQUEUE_POLL_S)

    def run(self, recovery: bool, scheduling: bool) -> None:
        """Serve every slot until SIGTERM or SIGINT and every job in hand is done or put back."""
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self.request_stop)
        helpers = [start_recovery_thread(self.app, self.stopping)] if recovery else []
        if scheduling:
            helpers.append(start_scheduler_thread(self.app, self.stopping))
        threads = [
            threading.Thread(target=self._serve, args=(queues,), name=f"rq-{queues[0]}-{n}", daemon=True)
            for queues, count in self.slots
            for n in range(count)
        ]
        for thread in threads:
            thread.start()
        log.info("worker: %s worker threads for %s", len(threads), self.slots)
        for thread in threads:
            while thread.is_alive():
                thread.join(timeout=0.5)  # in slices, so the main thread still handles signals
        self.stopping.set()
        for helper in helpers:
            helper.join(timeout=5)
        log.info("worker: stopped")

    def _serve(self, queue_names: tuple[str, ...]) -> None:
        """One worker thread: RQ's work loop, started again after a Redis outage until a stop."""
        failures = 0
        while not self.stopping.is_set():
            try:
                worker = self._new_worker(queue_names)
                worker.work(with_scheduler=False, logging_level=self.app.config["LOG_LEVEL"])
                failures = 0
            except RedisError as exc:
                log.warning("worker: Redis unavailable (%s)", exc)
            except Exception:
                log.exception("worker: the work loop failed")
            if self.stopping.is_set():
                return
            delay = RESTART_DELAY_S[min(failures, len(RESTART_DELAY_S) - 1)]
            failures += 1
            self.stopping.wait(delay)

    def _new_worker(self, queue_names: tuple[str, ...]) -> ThreadWorker:
        redis = connect_redis(self.app.config, socket_timeout=WORKER_SOCKET_TIMEOUT_S)
        worker = ThreadWorker(
            [Queue(name, connection=redis) for name in queue_names], connection=redis, worker_ttl=WORKER_TTL_S
        )
        worker.app = self.app
        with self._lock:
            self._workers = [w for w in self._workers if not w._stop_requested] + [worker]
            if self.stopping.is_set():
                worker.stop_after_current_job()
        return worker


def parse_slot(text: str) -> Slot:
    """`queue-a,queue-b*N` (N threads; one without `*N`)."""
    queues, _, count = text.partition("*")
    return tuple(queues.split(",")), int(count or 1)


def format_slot(slot: Slot) -> str:
    return f"{','.join(slot[0])}*{slot[1]}"


def slot_threads(slots: list[Slot]) -> int:
    return sum(count for _, count in slots)
