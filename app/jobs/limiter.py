"""The AI provider's rate limit, shared by every worker process on every machine.

A moving window in Redis from the `limits` library: JOB_RATE_LIMIT_MAX generator calls per
JOB_RATE_LIMIT_DURATION ms (0 turns it off). A call over the limit waits for the window to
free a slot; it neither fails nor uses up an attempt.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from functools import cache
from typing import Any, TypeVar

from limits import RateLimitItemPerSecond
from limits.storage import RedisStorage
from limits.strategies import MovingWindowRateLimiter

T = TypeVar("T")
LIMIT_KEY = "generator-calls"
MIN_WAIT_S = 0.05


@cache
def _limiter(redis_url: str) -> MovingWindowRateLimiter:
    return MovingWindowRateLimiter(RedisStorage(redis_url, socket_connect_timeout=2, socket_timeout=10))


def _item(config: Mapping[str, Any]) -> RateLimitItemPerSecond | None:
    calls = config["JOB_RATE_LIMIT_MAX"]
    if calls <= 0:
        return None
    return RateLimitItemPerSecond(calls, max(1, math.ceil(config["JOB_RATE_LIMIT_DURATION"] / 1000)))


def wait_for_slot(config: Mapping[str, Any], sleep: Callable[[float], None] = time.sleep) -> float:
    """Block until the shared window admits one more call; returns the wall-clock time of
    admission (read just before the admitting hit, as the limiter reads its own)."""
    item = _item(config)
    if item is None:
        return time.time()
    limiter = _limiter(config["REDIS_URL"])
    while True:
        attempt_at = time.time()
        if limiter.hit(item, LIMIT_KEY):
            return attempt_at
        reset_at = limiter.get_window_stats(item, LIMIT_KEY).reset_time
        sleep(max(MIN_WAIT_S, min(reset_at - time.time(), item.get_expiry())))
