"""RQ's view of the workers and of finished work, for waiting on a condition instead of a sleep."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from redis import Redis
from rq import Worker

from app.jobs.queues import ALL_QUEUES
from tests.services import wait_until


def rq_workers_of(settings: Mapping[str, Any]) -> int:
    """How many RQ workers one `python worker.py` registers with these settings: one per thread,
    whatever the number of processes sharing them (the orchestrator's thread, then each stage's)."""
    return 1 + sum(
        int(settings[name]) for name in ("JOB_CONCURRENCY_DECOMPOSE", "JOB_CONCURRENCY_GENERATE_KU")
    )


def wait_for_workers(redis: Redis, count: int, timeout: float = 60) -> None:
    """Wait until `count` RQ workers have registered: every queue has a worker listening."""
    wait_until(
        lambda: Worker.count(connection=redis) >= count,
        timeout=timeout,
        interval=0.1,
        message=f"{count} RQ workers to register",
    )


def rq_registries_empty(redis: Redis) -> bool:
    """No job id is left in any queue's finished or failed registry (the recovery sweep trims them)."""
    return not any(
        redis.zcard(f"rq:{kind}:{queue}") for queue in ALL_QUEUES for kind in ("finished", "failed")
    )
