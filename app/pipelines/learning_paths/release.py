"""Release builds' owed steps into their queues a window at a time, fairly across users.

A step is `pending` in the database until it is released: then it is marked `queued` (committed
first) and enqueued. A crash between the two leaves a queued step with no job, which the
recovery sweep enqueues, so a step is never lost and never released twice. Only processing
builds release, so a paused or cancelled build releases nothing more.

Called where steps become owed (a build admitted or resumed, a dead step retried), where a step
finishes (its place frees up), and by the recovery sweep.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from flask import current_app
from rq import Queue
from rq.registry import StartedJobRegistry
from sqlalchemy import func, select, update

from app.database import utcnow
from app.extensions import db
from app.jobs import release
from app.jobs.queues import DECOMPOSE_QUEUE, GENERATE_KU_QUEUE, get_redis
from app.models import Build, BuildStatus, BuildStep, StepType, WorkStatus
from app.models.statuses import IN_FLIGHT
from app.pipelines.call_owner import owner_key
from app.pipelines.learning_paths.step_rows import QUEUE_OF_STEP

# One orchestrator per build, on the queue finalize shares: never held back.
UNWINDOWED = (StepType.CONCEPTS,)
# The setting that says how many worker processes (per worker machine) serve a windowed queue.
WORKERS_SETTING = {
    DECOMPOSE_QUEUE: "JOB_CONCURRENCY_DECOMPOSE",
    GENERATE_KU_QUEUE: "JOB_CONCURRENCY_GENERATE_KU",
}
# Four steps queued or running per worker: the workers never wait for a release, and a newcomer
# does not wait behind them either (its steps go to the front of the queue).
DEFAULT_WINDOW_PER_WORKER = 4
HELD_REASON = "waiting for its turn"
Enqueue = Callable[[list[tuple[int, str]], bool], int]  # (steps, at the queue's front)


def release_window(queue_name: str, config: Mapping[str, Any] | None = None) -> int | None:
    """The most of this queue's steps Redis may hold at once (None: no limit)."""
    config = config if config is not None else current_app.config
    setting = config["RELEASE_WINDOW"]
    if setting is not None:
        return setting or None
    return DEFAULT_WINDOW_PER_WORKER * _workers(queue_name, config)


def _workers(queue_name: str, config: Mapping[str, Any]) -> int:
    """The queue's worker processes, as configured on this machine."""
    return max(1, config[WORKERS_SETTING[queue_name]] if queue_name in WORKERS_SETTING else 1)


def release_batch(window: int) -> int:
    """Places are released once this many are free, not one by one: each release is a write
    transaction, and a quarter of the window still leaves three quarters queued for the workers."""
    return max(1, window // 4)


def windowed() -> bool:
    """False with RELEASE_WINDOW=0: every owed step is enqueued at once, as before windows."""
    return bool(current_app.config["RELEASE_WINDOW"] != 0)


def room_for_a_batch(queue_name: str, finishing: bool = True) -> bool:
    """Whether this queue may have a batch of places free, judged from Redis alone (its queue's
    length and its started jobs, less the one finishing if it is this queue's): most finishes
    leave too few, and a pass is a database read. When wrong (a killed worker's job still
    counted as started), the next finish or the recovery sweep releases."""
    window = release_window(queue_name)
    if window is None:
        return True
    redis = get_redis()
    pipe = redis.pipeline(transaction=False)
    pipe.llen(Queue(queue_name, connection=redis).key)
    pipe.zcard(StartedJobRegistry(queue_name, connection=redis).key)
    waiting, started = pipe.execute()
    return bool(window - (waiting + max(0, started - int(finishing))) >= release_batch(window))


@dataclass
class QueueLoad:
    """One step type's counts per processing build."""

    in_flight: dict[str, int]
    owed: dict[str, int]


def _loads() -> tuple[dict[StepType, QueueLoad], dict[str, tuple[str, int]]]:
    """Counts of pending and in-flight steps per step type and build, and each processing
    build's owner and age rank, in two queries."""
    builds = db.session.execute(
        select(Build.id, Build.triggered_by)
        .where(Build.status == BuildStatus.PROCESSING)
        .order_by(Build.created_at, Build.id)
    ).all()
    owners = {
        build_id: (owner_key(user_id, f"build-{build_id}"), age)
        for age, (build_id, user_id) in enumerate(builds)
    }
    loads = {kind: QueueLoad({}, {}) for kind in StepType}
    if not owners:
        return loads, owners
    rows = db.session.execute(
        select(BuildStep.build_id, BuildStep.type, BuildStep.status, func.count())
        .join(Build, Build.id == BuildStep.build_id)
        .where(
            Build.status == BuildStatus.PROCESSING,
            BuildStep.status.in_([WorkStatus.PENDING, *IN_FLIGHT]),
        )
        .group_by(BuildStep.build_id, BuildStep.type, BuildStep.status)
    ).all()
    for build_id, kind, status, count in rows:
        load = loads[StepType(kind)]
        counts = load.owed if status == WorkStatus.PENDING else load.in_flight
        counts[build_id] = counts.get(build_id, 0) + count
    return loads, owners


def _release_pass(enqueue: Enqueue, still_held: Callable[[], bool]) -> int:
    config = current_app.config
    redis = get_redis()
    loads, owners = _loads()
    chosen: list[tuple[int, StepType, bool]] = []
    for kind, load in loads.items():
        if not load.owed:
            continue
        queue_name = QUEUE_OF_STEP[kind]
        window = None if kind in UNWINDOWED else release_window(queue_name, config)
        front: set[str] = set()
        if window is None:
            given = dict(load.owed)
        else:
            groups = [
                release.Group(
                    build_id,
                    owners[build_id][0],
                    load.in_flight.get(build_id, 0),
                    load.owed.get(build_id, 0),
                    owners[build_id][1],
                )
                for build_id in {*load.owed, *load.in_flight}
            ]
            free = window - sum(load.in_flight.values())
            if free < release_batch(window):
                free = 0  # newcomers still get their one place (share_out)
            given, served_last = release.share_out(
                groups, free, config["RELEASE_POLICY"], release.last_owner(redis, queue_name)
            )
            release.remember_last_owner(redis, queue_name, served_last)
            if config["RELEASE_POLICY"] == "fair":
                front = release.owners_behind(groups, _workers(queue_name, config))
        for build_id, count in given.items():
            step_ids = db.session.scalars(
                select(BuildStep.id)
                .where(
                    BuildStep.build_id == build_id,
                    BuildStep.type == kind,
                    BuildStep.status == WorkStatus.PENDING,
                )
                .order_by(BuildStep.id)
                .limit(count)
            ).all()
            chosen += [(step_id, StepType(kind), owners[build_id][0] in front) for step_id in step_ids]
    if not chosen:
        db.session.commit()
        return 0
    marked = set(
        db.session.execute(
            update(BuildStep)
            .where(
                BuildStep.id.in_([step_id for step_id, _, _ in chosen]),
                BuildStep.status == WorkStatus.PENDING,
            )
            .values(status=WorkStatus.QUEUED, queued_at=utcnow())
            .returning(BuildStep.id)
        )
        .scalars()
        .all()
    )
    if not still_held():  # another process may be sharing out the same places: leave it to it
        db.session.rollback()
        return 0
    db.session.commit()
    released = [(step_id, str(kind), at_front) for step_id, kind, at_front in chosen if step_id in marked]
    return enqueue(
        [(step_id, kind) for step_id, kind, at_front in released if not at_front], False
    ) + enqueue([(step_id, kind) for step_id, kind, at_front in released if at_front], True)


def release_owed_steps(enqueue: Enqueue) -> int:
    """Release what the window lets through, fairly, handing the released steps to `enqueue`
    (the pipeline's, which knows each step type's function); returns how many were enqueued."""
    return release.run_exclusively(get_redis(), lambda still_held: _release_pass(enqueue, still_held))


def step_placement(build_ids: list[str]) -> dict[str, dict[str, int]]:
    """Each build's unfinished steps by where they are: released (a job waits in Redis),
    running, held back (pending in the database), in one query."""
    placement = {build_id: {"released": 0, "running": 0, "held_back": 0} for build_id in build_ids}
    if not build_ids:
        return placement
    where = {
        WorkStatus.QUEUED: "released",
        WorkStatus.RETRYING: "released",
        WorkStatus.RUNNING: "running",
        WorkStatus.PENDING: "held_back",
    }
    rows = db.session.execute(
        select(BuildStep.build_id, BuildStep.status, func.count())
        .where(BuildStep.build_id.in_(build_ids), BuildStep.status.in_(list(where)))
        .group_by(BuildStep.build_id, BuildStep.status)
    ).all()
    for build_id, status, count in rows:
        placement[build_id][where[WorkStatus(status)]] += count
    return placement
