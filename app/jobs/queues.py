"""Queues, the Redis connection, and the retry policy every job shares."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from flask import current_app
from redis import Redis
from redis.connection import SSLConnection, parse_url
from redis.sentinel import Sentinel
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


def sentinel_addresses(config: Mapping[str, Any]) -> list[tuple[str, int]]:
    """REDIS_SENTINELS as (host, port) pairs; a malformed one stops the process with its name."""
    text = (config.get("REDIS_SENTINELS") or "").strip()
    if not text:
        return []
    addresses = []
    for item in text.split(","):
        host, _, port = item.strip().rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"REDIS_SENTINELS={text!r}: {item.strip()!r} is not host:port")
        addresses.append((host.strip("[]"), int(port)))
    if not (config.get("REDIS_SENTINEL_MASTER") or "").strip():
        raise ValueError("REDIS_SENTINELS is set but REDIS_SENTINEL_MASTER (the monitored name) is not")
    return addresses


def redis_settings_key(config: Mapping[str, Any]) -> tuple[str, ...]:
    """The settings that decide which Redis a client reaches (a cache key for clients)."""
    names = ("REDIS_URL", "REDIS_SENTINELS", "REDIS_SENTINEL_MASTER", "REDIS_SENTINEL_PASSWORD")
    return tuple(str(config.get(name) or "") for name in names)


def redis_location(config: Mapping[str, Any]) -> str:
    """Where Redis is, for people to read: no password."""
    if addresses := sentinel_addresses(config):
        hosts = ",".join(f"{host}:{port}" for host, port in addresses)
        return f"redis+sentinel://{hosts}/{config['REDIS_SENTINEL_MASTER'].strip()}"
    options = parse_url(config["REDIS_URL"])
    scheme = "rediss" if options.get("connection_class") is SSLConnection else "redis"
    return f"{scheme}://{options.get('host', 'localhost')}:{options.get('port', 6379)}/{options.get('db', 0)}"


def _master_options(url: str) -> dict[str, Any]:
    """What REDIS_URL says about the master besides where it is: password, database, TLS."""
    options: dict[str, Any] = parse_url(url)
    for where in ("host", "port", "path"):
        options.pop(where, None)
    if options.pop("connection_class", None) is SSLConnection:
        options["ssl"] = True
    return options


def _sentinel(config: Mapping[str, Any], timeouts: dict[str, float]) -> Sentinel:
    master = _master_options(config["REDIS_URL"])
    tls = {k: v for k, v in master.items() if k.startswith("ssl")}
    password = config.get("REDIS_SENTINEL_PASSWORD") or None
    return Sentinel(
        sentinel_addresses(config),
        sentinel_kwargs={**timeouts, **tls, "password": password},
        **timeouts,
        **master,
    )


def connect_redis(config: Mapping[str, Any], socket_timeout: float = 10) -> Redis:
    """A client that fails fast when Redis is away, so requests answer instead of hanging.

    With REDIS_SENTINELS set, the client asks the Sentinels where the master is on every new
    connection, so after a failover it (and a pub/sub taken from it) reconnects to the new
    master. A worker's own client needs a socket timeout longer than its blocking dequeue.
    """
    timeouts = {"socket_connect_timeout": 2, "socket_timeout": socket_timeout}
    if not sentinel_addresses(config):
        return Redis.from_url(config["REDIS_URL"], health_check_interval=15, **timeouts)
    sentinel = _sentinel(config, timeouts)
    return cast(Redis, sentinel.master_for(config["REDIS_SENTINEL_MASTER"].strip(), health_check_interval=15))


def get_redis() -> Redis:
    return cast(Redis, current_app.extensions["redis"])


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
    # cast: RQ annotates the intervals as ints, and schedules fractions of a second as well.
    return Retry(max=len(intervals), interval=cast(list[int], intervals)) if intervals else None
