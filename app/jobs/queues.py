"""Queues, the Redis connection, and the retry policy every job shares."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import current_app
from redis import Redis
from rq import Queue, Retry

LESSON_PLANS_QUEUE = "lesson-plans"
BUILD_PATH_QUEUE = "build-path"  # the orchestrator and finalize
DECOMPOSE_QUEUE = "decompose-concept"
GENERATE_KU_QUEUE = "generate-ku"
DEAD_LETTER_QUEUE = "dead-letter"
ALL_QUEUES = (
    BUILD_PATH_QUEUE,
    LESSON_PLANS_QUEUE,
    DECOMPOSE_QUEUE,
    GENERATE_KU_QUEUE,
    DEAD_LETTER_QUEUE,
)


def connect_redis(url: str, socket_timeout: float = 10) -> Redis:
    """A client that fails fast when Redis is away, so requests answer instead of hanging.

    A worker's own client needs a socket timeout longer than its blocking dequeue.
    """
    return Redis.from_url(
        url, socket_connect_timeout=2, socket_timeout=socket_timeout, health_check_interval=15
    )


def get_redis() -> Redis:
    return current_app.extensions["redis"]


def get_queue(name: str) -> Queue:
    return Queue(name, connection=get_redis())


def backoff_intervals(config: Mapping[str, Any]) -> list[float]:
    """Seconds to wait before each retry: exponential (delay, 2×delay, 4×delay…) or fixed."""
    delay_s = config["JOB_BACKOFF_DELAY"] / 1000
    retries = max(0, config["JOB_MAX_ATTEMPTS"] - 1)
    if config["JOB_BACKOFF_TYPE"] == "fixed":
        return [delay_s] * retries
    return [delay_s * 2**n for n in range(retries)]


def retry_policy(config: Mapping[str, Any]) -> Retry | None:
    """JOB_MAX_ATTEMPTS counts every attempt, the first included (as Bull's `attempts`)."""
    intervals = backoff_intervals(config)
    return Retry(max=len(intervals), interval=intervals) if intervals else None
