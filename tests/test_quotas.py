"""Quotas that keep one user (or one worker) from taking more than their share: pending builds
per user, a dead-letter retry within the active-build cap, and a provider pause that only grows."""

from __future__ import annotations

import random
import threading
import time
from typing import Any

from app.jobs.limiter import PAUSE_KEY, pause_calls

THREADS = 24
ROUNDS = 15


def _pause_concurrently(config: dict[str, Any], seconds: list[float]) -> None:
    barrier = threading.Barrier(len(seconds))

    def call(duration: float) -> None:
        barrier.wait()
        pause_calls(config, duration)

    threads = [threading.Thread(target=call, args=(s,)) for s in seconds]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_concurrent_pauses_never_shorten_the_longest_one(redis_server):
    config = {"REDIS_URL": redis_server.url}
    connection = redis_server.client()
    for _ in range(ROUNDS):
        connection.delete(PAUSE_KEY)
        seconds = [100.0 * (i + 1) for i in range(THREADS)]
        random.shuffle(seconds)
        started = time.time()

        _pause_concurrently(config, seconds)

        until = float(connection.get(PAUSE_KEY))
        assert until >= started + max(seconds), "a shorter pause overwrote the longest"
        assert connection.pttl(PAUSE_KEY) > (max(seconds) - 5) * 1000


def test_a_shorter_pause_leaves_a_longer_one_alone_and_a_longer_one_extends_it(redis_server):
    config = {"REDIS_URL": redis_server.url}
    connection = redis_server.client()
    connection.delete(PAUSE_KEY)

    pause_calls(config, 60)
    first = float(connection.get(PAUSE_KEY))
    pause_calls(config, 5)
    kept = float(connection.get(PAUSE_KEY))
    pause_calls(config, 120)
    extended = float(connection.get(PAUSE_KEY))

    assert kept == first
    assert extended > first + 50 and connection.pttl(PAUSE_KEY) > 115_000
