"""RQ's scheduler (it moves delayed retries onto their queues) run as a thread of a process
we control, instead of RQ's `with_scheduler=True`.

RQ forks the scheduler from the worker, and the fork keeps the worker's Redis sockets. When
the worker is SIGKILLed the fork lives on, so Redis still sees the dead worker's blocking pop
waiting on its socket and hands it the next job pushed to that queue: the job is gone from
the queue, marked queued, and nobody will ever run it. A thread dies with its process.

RQ's scheduler lock lives 61 s (its interval + 60), so when the machine holding it dies, delayed
retries would wait a minute for another machine's scheduler. The living holder renews it every
second, so it is cut to LOCK_TTL_S after each renewal: a successor takes over within seconds.
"""

from __future__ import annotations

import logging
import threading
from uuid import uuid4

from flask import Flask
from redis.exceptions import RedisError
from rq.scheduler import RQScheduler

from app.jobs.queues import ALL_QUEUES, connect_redis

log = logging.getLogger(__name__)

SCHEDULER_INTERVAL_S = 1  # whole seconds: RQ uses it in EXPIRE
# A scheduler that did not get a queue's lock (another process holds it) asks again this often,
# so a successor takes over soon after the holder dies (RQ itself waits 10 minutes).
LOCK_RETRY_S = 2.0
LOCK_TTL_S = 5  # the holder renews every SCHEDULER_INTERVAL_S; a dead holder's lock lapses this soon
# Shorten the lock only while it is still this scheduler's own.
_SHORTEN_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('EXPIRE', KEYS[1], ARGV[2])
end
return 0
"""


def start_scheduler_thread(app: Flask, stop: threading.Event) -> threading.Thread:
    """Enqueue due scheduled jobs every second until `stop` is set; one process per queue
    holds RQ's scheduler lock at a time."""

    def _loop() -> None:
        scheduler: RQScheduler | None = None
        name = uuid4().hex  # kept across reconnects, so the locks it held are still its own
        since_lock_try = LOCK_RETRY_S
        while not stop.is_set():
            try:
                if scheduler is None:
                    redis = connect_redis(app.config)
                    scheduler = RQScheduler(
                        ALL_QUEUES, connection=redis, interval=SCHEDULER_INTERVAL_S, name=name
                    )
                    scheduler.register_birth()
                    since_lock_try = LOCK_RETRY_S
                if scheduler.acquired_locks != set(ALL_QUEUES) and since_lock_try >= LOCK_RETRY_S:
                    scheduler.acquire_locks()
                    since_lock_try = 0.0
                if scheduler.acquired_locks:
                    scheduler.heartbeat()
                    _shorten_locks(scheduler)
                    scheduler.enqueue_scheduled_jobs()
            except RedisError as exc:
                log.warning("scheduler: Redis error (%s); starting again", exc)
                scheduler = None
            since_lock_try += SCHEDULER_INTERVAL_S
            stop.wait(SCHEDULER_INTERVAL_S)
        if scheduler is not None:
            try:
                scheduler.release_locks()
                scheduler.register_death()
            except RedisError:
                pass  # the locks expire on their own

    thread = threading.Thread(target=_loop, name="scheduler", daemon=True)
    thread.start()
    return thread


def _shorten_locks(scheduler: RQScheduler) -> None:
    """Cut the locks RQ just renewed for 61 s down to LOCK_TTL_S."""
    shorten = scheduler.connection.register_script(_SHORTEN_LOCK)
    with scheduler.connection.pipeline() as pipeline:
        for name in scheduler.acquired_locks:
            shorten(
                keys=[scheduler.get_locking_key(name)], args=[scheduler.name, LOCK_TTL_S], client=pipeline
            )
        pipeline.execute()
