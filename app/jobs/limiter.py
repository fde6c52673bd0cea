"""The AI provider's limits, shared by every worker process on every machine.

Requests: a moving window in Redis from the `limits` library, JOB_RATE_LIMIT_MAX calls per
JOB_RATE_LIMIT_DURATION ms (0 turns it off). Tokens: JOB_RATE_LIMIT_TOKENS per the same window,
in a second moving window; a call first reserves its most (prompt estimate + max output
tokens), and is charged more after the call if the provider reported more, so no window ever
holds more than the cap. A pause (a 429's Retry-After, or a provider that is down) stops every
worker's calls until it ends. A call over a limit waits; it neither fails nor uses up an attempt.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from limits import RateLimitItemPerSecond
from limits.storage import RedisStorage
from limits.strategies import MovingWindowRateLimiter
from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from app.jobs.queues import connect_redis, redis_settings_key

LIMIT_KEY = "generator-calls"
TOKEN_KEY = "generator-tokens"
PAUSE_KEY = "curriculum-builder:generator-paused-until"
MIN_WAIT_S = 0.05
# A Sentinel failover leaves no master for a few seconds; a call waits that out instead of
# failing its step's attempt. A longer outage fails the attempt (and it is retried as usual).
REDIS_OUTAGE_WAIT_S = 30.0
OUTAGE_RETRY_S = 0.5
T = TypeVar("T")


_clients: dict[tuple[str, ...], tuple[Redis, MovingWindowRateLimiter]] = {}


def _connect(config: Mapping[str, Any]) -> tuple[Redis, MovingWindowRateLimiter]:
    """One client per Redis setting, and the limiter's storage on its pool (so it follows a
    Sentinel failover with it)."""
    key = redis_settings_key(config)
    if key not in _clients:
        redis = connect_redis(config)
        storage = RedisStorage(config["REDIS_URL"], connection_pool=redis.connection_pool)
        _clients[key] = (redis, MovingWindowRateLimiter(storage))
    return _clients[key]


def _limiter(config: Mapping[str, Any]) -> MovingWindowRateLimiter:
    return _connect(config)[1]


def _redis(config: Mapping[str, Any]) -> Redis:
    return _connect(config)[0]


def _window_s(config: Mapping[str, Any]) -> int:
    return max(1, math.ceil(config["JOB_RATE_LIMIT_DURATION"] / 1000))


def _item(amount: int, config: Mapping[str, Any]) -> RateLimitItemPerSecond | None:
    return RateLimitItemPerSecond(amount, _window_s(config)) if amount > 0 else None


def _take(
    config: Mapping[str, Any],
    item: RateLimitItemPerSecond | None,
    key: str,
    cost: int,
    sleep: Callable[[float], None],
) -> float:
    """Block until the window admits `cost`; returns the wall-clock time of admission."""
    if item is None or cost <= 0:
        return time.time()
    limiter = _limiter(config)
    cost = min(cost, item.amount)  # a single call larger than the whole cap still runs, alone
    while True:
        _wait_for_pause(config, sleep)
        attempt_at = time.time()
        if limiter.hit(item, key, cost=cost):
            return attempt_at
        reset_at = limiter.get_window_stats(item, key).reset_time
        sleep(max(MIN_WAIT_S, min(reset_at - time.time(), item.get_expiry())))


def _through_outage(call: Callable[[], T], sleep: Callable[[float], None]) -> T:
    """Run `call`, again while Redis is unreachable, for up to REDIS_OUTAGE_WAIT_S."""
    deadline = time.monotonic() + REDIS_OUTAGE_WAIT_S
    while True:
        try:
            return call()
        except (RedisConnectionError, RedisTimeoutError):
            if time.monotonic() >= deadline:
                raise
            sleep(OUTAGE_RETRY_S)


def wait_for_slot(
    config: Mapping[str, Any], tokens: int = 0, sleep: Callable[[float], None] = time.sleep
) -> float:
    """Block until both windows admit one more call (reserving `tokens`); returns the wall-clock
    time of admission (read just before the admitting hit, as the limiter reads its own)."""

    def _admit() -> float:
        _wait_for_pause(config, sleep)  # a pause holds even when no limit is configured
        _take(config, _item(config["JOB_RATE_LIMIT_TOKENS"], config), TOKEN_KEY, tokens, sleep)
        return _take(config, _item(config["JOB_RATE_LIMIT_MAX"], config), LIMIT_KEY, 1, sleep)

    return _through_outage(_admit, sleep)


def charge_tokens(
    config: Mapping[str, Any], tokens: int, sleep: Callable[[float], None] = time.sleep
) -> None:
    """Charge tokens a call used beyond what it reserved (waiting for room, so later calls see them)."""
    item = _item(config["JOB_RATE_LIMIT_TOKENS"], config)
    _through_outage(lambda: _take(config, item, TOKEN_KEY, tokens, sleep), sleep)


def pause_calls(config: Mapping[str, Any], seconds: float) -> None:
    """Stop every worker's generator calls for `seconds` (never shortening a longer pause)."""
    until = time.time() + seconds

    def _pause() -> None:
        redis = _redis(config)
        current = redis.get(PAUSE_KEY)
        if current is None or float(current) < until:
            redis.set(PAUSE_KEY, repr(until), px=max(1, int(seconds * 1000)))

    _through_outage(_pause, time.sleep)


def _wait_for_pause(config: Mapping[str, Any], sleep: Callable[[float], None]) -> None:
    raw = _redis(config).get(PAUSE_KEY)
    if raw is not None:
        left = float(raw) - time.time()
        if left > 0:
            sleep(left)
