"""The release window: a build's steps go to Redis a window at a time, fairly across users.

Real redis-server, real worker processes, a real SQLite file. Where a count must be exact, no
worker runs (nothing moves but what the code under test releases)."""

from __future__ import annotations

import time
from collections import deque
from typing import Any

import pytest
from flask import Flask
from rq import Queue
from sqlalchemy import func, select

from app.database import utcnow
from app.extensions import db
from app.jobs.queues import DECOMPOSE_QUEUE, GENERATE_KU_QUEUE
from app.jobs.recovery import reconcile_all
from app.jobs.release import LOCK_KEY, LOCK_TTL_MS, Group, owners_behind, run_exclusively, share_out
from app.models import Build, BuildStep, Concept, LearningPath, StepType, WorkStatus
from app.models.statuses import IN_FLIGHT
from app.pipelines.learning_paths.step_rows import insert_steps, new_step
from app.pipelines.learning_paths.steps import _worth_a_pass
from tests.helpers import build_of, create_path, start_build, wait_for_build
from tests.helpers.users import make_user
from tests.helpers.web import sign_in
from tests.services import wait_until

pytestmark = pytest.mark.slow

WINDOW = 3


@pytest.fixture
def service_env(service_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Every process of these tests (the app, the workers) runs with a window of 3."""
    monkeypatch.setenv("RELEASE_WINDOW", str(WINDOW))
    return {**service_env, "RELEASE_WINDOW": str(WINDOW)}


# --- sharing out free places (the pure policy) ------------------------------------------


def test_free_places_go_to_the_user_with_the_fewest_in_flight_then_to_their_emptiest_build() -> None:
    groups = [
        Group("a1", "alice", in_flight=4, owed=100, age=0),
        Group("a2", "alice", in_flight=0, owed=100, age=1),
        Group("b1", "bob", in_flight=0, owed=1, age=2),
    ]
    given, _ = share_out(groups, free=4)
    assert given == {"b1": 1, "a2": 3}, "bob's one step first; alice's places go to her build with none"


def test_tied_users_take_turns_across_passes() -> None:
    groups = [Group("a", "alice", 1, 50), Group("b", "bob", 1, 50), Group("c", "carol", 1, 50)]
    served = []
    last = None
    for _ in range(6):  # one place frees at a time; the owners' counts stay tied
        given, last = share_out(groups, free=1, last_owner=last)
        served.append(last)
    assert served == ["alice", "bob", "carol", "alice", "bob", "carol"]


def test_what_an_owner_behind_is_given_goes_to_the_front_of_the_queue() -> None:
    groups = [Group("a", "alice", 6, 100), Group("b", "bob", 0, 4), Group("c", "carol", 6, 0)]
    assert owners_behind(groups, workers=6) == {"bob"}
    one_owner = [Group("a1", "alice", 6, 9), Group("a2", "alice", 0, 9)]
    assert owners_behind(one_owner, workers=6) == set(), "one owner: in order"
    running_his_share = [Group("a", "alice", 6, 100), Group("b", "bob", 3, 100)]
    assert owners_behind(running_his_share, workers=6) == set(), "bob has his share: alice's queued go first"


def test_with_many_owners_each_under_their_share_nobody_jumps_the_queue() -> None:
    many = [Group(f"b{i}", f"user-{i:02d}", i % 2, 100) for i in range(40)]
    assert owners_behind(many, workers=5) == set(), "a job or so each: the release order is fair already"


def test_many_owners_released_fairly_onto_a_fifo_queue_are_all_served_in_turn() -> None:
    """40 owners' builds, 5 workers, a window of 20, one job finishing at a time: the queue as
    RQ keeps it (front pushes for owners behind). Owners just served went to the front while
    others waited at the back: 35 of 40 were never served in 300 rounds (28 of 40 builds showed
    no event for a minute in the 200-page benchmark)."""
    owners, workers, window, rounds = 40, 5, 20, 300
    names = [f"user-{i:02d}" for i in range(owners)]
    in_flight = dict.fromkeys(names, 0)
    queue: deque[str] = deque()
    last: str | None = None
    served: dict[str, list[int]] = {name: [] for name in names}

    def release() -> None:
        nonlocal last
        groups = [Group(name, name, in_flight[name], 10**6) for name in names]
        given, last = share_out(groups, max(0, window - sum(in_flight.values())), "fair", last)
        front = owners_behind(groups, workers)
        for owner, count in given.items():
            for _ in range(count):
                in_flight[owner] += 1
                (queue.appendleft if owner in front else queue.append)(owner)

    release()
    for turn in range(rounds):
        for owner in [queue.popleft() for _ in range(min(workers, len(queue)))]:
            served[owner].append(turn)
            in_flight[owner] -= 1
            release()

    never = [name for name, turns in served.items() if not turns]
    assert never == [], f"{len(never)} of {owners} owners never served"
    longest_wait = max(
        b - a for turns in served.values() for a, b in zip([0, *turns], [*turns, rounds], strict=True)
    )
    assert longest_wait <= 3 * owners // workers, (
        f"an owner waited {longest_wait} rounds (fair: {owners // workers})"
    )


def test_a_user_with_nothing_in_flight_gets_one_place_even_when_the_window_is_full() -> None:
    full = [Group("a", "alice", 6, 100), Group("b", "bob", 0, 4)]
    assert share_out(full, free=0)[0] == {"b": 1}, "bob's first step does not wait for one of alice's"
    assert share_out(full, free=0, policy="fifo")[0] == {}
    alone = [Group("a", "alice", 0, 100)]
    assert share_out(alone, free=3)[0] == {"a": 3}, "the newcomer's place is one of the free ones"


def test_fifo_policy_serves_the_oldest_build_first() -> None:
    groups = [Group("new", "bob", 0, 5, age=1), Group("old", "alice", 0, 5, age=0)]
    given, _ = share_out(groups, free=7, policy="fifo")
    assert given == {"old": 5, "new": 2}


def test_a_pass_whose_lock_expired_under_it_is_told_so_before_it_commits(redis_server) -> None:  # type: ignore[no-untyped-def]
    redis = redis_server.client()
    seen: list[bool] = []

    def release_pass(still_held) -> int:  # type: ignore[no-untyped-def]
        seen.append(still_held())
        redis.set(LOCK_KEY, "another process's token")  # this one's lock expired and was taken
        seen.append(still_held())
        return 0

    run_exclusively(redis, release_pass)
    assert seen == [True, False]
    assert redis.get(LOCK_KEY) == b"another process's token", "the other holder's lock is left alone"


def test_a_lock_left_by_a_killed_holder_stops_releases_only_for_seconds(redis_server) -> None:  # type: ignore[no-untyped-def]
    """A SIGKILLed process never unlocks: its lock must lapse in seconds, not the 45 s it once
    held, which kept a two-machine build from finishing after one machine died."""
    redis = redis_server.client()
    redis.set(LOCK_KEY, "a killed process's token", px=LOCK_TTL_MS)
    started = time.monotonic()
    wait_until(lambda: run_exclusively(redis, lambda still_held: 1) == 1, timeout=10, message="a release")
    assert time.monotonic() - started <= LOCK_TTL_MS / 1000 + 1


def test_a_pass_longer_than_the_lock_keeps_it_by_renewal(redis_server) -> None:  # type: ignore[no-untyped-def]
    redis = redis_server.client()
    held: list[bool] = []

    def slow_pass(still_held) -> int:  # type: ignore[no-untyped-def]
        time.sleep(LOCK_TTL_MS / 1000 * 2)  # e.g. waiting on a locked database
        held.append(still_held())
        return 0

    run_exclusively(redis, slow_pass)
    assert held == [True]
    assert redis.get(LOCK_KEY) is None, "unlocked after the pass"


# --- the window with no worker running: exact counts -------------------------------------


def _path_with_concepts(app: Flask, client, auth: dict[str, str], concepts: int) -> str:  # type: ignore[no-untyped-def]
    """A path whose concepts are stored already, so a build fans out at once (no worker needed)."""
    path_id = create_path(client, auth, concepts=concepts)
    with app.app_context():
        path = db.session.get(LearningPath, path_id)
        db.session.add_all(
            Concept(path_id=path_id, position=i, name=f"Concept {i}", description="d")
            for i in range(concepts)
        )
        path.concepts_generated_at = utcnow()
        db.session.commit()
    return path_id


def _steps_by_status(app: Flask, build_id: str, kind: StepType = StepType.SUB_CONCEPTS) -> dict[str, int]:
    with app.app_context():
        rows = db.session.execute(
            select(BuildStep.status, func.count())
            .where(BuildStep.build_id == build_id, BuildStep.type == kind)
            .group_by(BuildStep.status)
        ).all()
        return {status: count for status, count in rows}


def _queued_ids(redis, queue_name: str) -> list[str]:  # type: ignore[no-untyped-def]
    return sorted(Queue(queue_name, connection=redis).job_ids)


def test_a_build_holds_no_more_than_the_window_in_redis_and_a_flushall_re_releases_exactly_that(
    app: Flask, client, auth, redis_server
) -> None:  # type: ignore[no-untyped-def]
    redis = redis_server.client()
    build_id = start_build(client, auth, _path_with_concepts(app, client, auth, concepts=10))

    assert _steps_by_status(app, build_id) == {"queued": WINDOW, "pending": 10 - WINDOW}
    released = _queued_ids(redis, DECOMPOSE_QUEUE)
    assert len(released) == WINDOW

    with app.app_context():  # the sweep owes nothing more while the window is full
        reconcile_all()
    assert _queued_ids(redis, DECOMPOSE_QUEUE) == released

    redis.flushall()
    with app.app_context():
        reconcile_all()
    assert _queued_ids(redis, DECOMPOSE_QUEUE) == released, "the same steps again, no more"
    assert _steps_by_status(app, build_id) == {"queued": WINDOW, "pending": 10 - WINDOW}


def test_the_admin_queue_shows_released_running_and_held_back_steps(app: Flask, client, auth) -> None:  # type: ignore[no-untyped-def]
    build_id = start_build(client, auth, _path_with_concepts(app, client, auth, concepts=10))
    sign_in(app, client, "root@example.com", admin=True)
    page = client.get("/admin/jobs").get_data(as_text=True)
    assert f"{WINDOW} released, 0 running, {10 - WINDOW} held back (waiting for its turn)" in page, build_id


def test_a_paused_build_releases_nothing_more_and_resume_finishes_it(
    app: Flask, client, auth, workers, redis_server
) -> None:  # type: ignore[no-untyped-def]
    redis = redis_server.client()
    build_id = start_build(client, auth, _path_with_concepts(app, client, auth, concepts=8))
    assert client.post(f"/api/jobs/{build_id}/pause", headers=auth).status_code == 200

    workers()  # they take the released steps, find the build paused and park them
    wait_until(
        lambda: _steps_by_status(app, build_id) == {"pending": 8},
        timeout=60,
        message="every step parked as pending",
    )
    with app.app_context():
        reconcile_all()  # the sweep owes a paused build nothing
    assert _queued_ids(redis, DECOMPOSE_QUEUE) == []
    assert _steps_by_status(app, build_id) == {"pending": 8}

    assert client.post(f"/api/jobs/{build_id}/resume", headers=auth).status_code == 200
    wait_for_build(client, auth, build_id, timeout=120)


def test_a_cancelled_build_releases_nothing_more(app: Flask, client, auth, workers) -> None:  # type: ignore[no-untyped-def]
    build_id = start_build(client, auth, _path_with_concepts(app, client, auth, concepts=8))
    assert client.post(f"/api/jobs/{build_id}/cancel", headers=auth).status_code == 200
    workers()
    with app.app_context():
        reconcile_all()
    wait_until(
        lambda: _steps_by_status(app, build_id) == {"cancelled": 8},
        timeout=30,
        message="every step cancelled",
    )
    assert _steps_by_status(app, build_id, StepType.KNOWLEDGE_UNITS) == {}, "no step ever ran"


# --- the window with workers: released as steps finish -----------------------------------


def _in_flight_by_queue(app: Flask) -> dict[str, int]:
    """Steps the database counts as in Redis (queued, running, retrying), per step type."""
    with app.app_context():
        rows = db.session.execute(
            select(BuildStep.type, func.count())
            .where(BuildStep.status.in_(IN_FLIGHT))
            .group_by(BuildStep.type)
        ).all()
        db.session.remove()
        return {kind: count for kind, count in rows}


def test_steps_are_released_as_earlier_ones_finish_never_past_the_window(
    app: Flask, client, auth, workers, redis_server
) -> None:  # type: ignore[no-untyped-def]
    redis = redis_server.client()
    build_id = start_build(client, auth, create_path(client, auth, concepts=8))
    workers(GENERATOR_LATENCY_MS="50")
    most: dict[str, int] = {}
    most_waiting = {DECOMPOSE_QUEUE: 0, GENERATE_KU_QUEUE: 0}

    def finished() -> bool:
        for kind, count in _in_flight_by_queue(app).items():
            most[kind] = max(most.get(kind, 0), count)
        for name in most_waiting:
            most_waiting[name] = max(most_waiting[name], Queue(name, connection=redis).count)
        return build_of(client, auth, build_id)["status"] == "completed"

    wait_until(finished, timeout=120, interval=0.02, message="the build to complete")
    assert most[StepType.SUB_CONCEPTS] <= WINDOW and most[StepType.KNOWLEDGE_UNITS] <= WINDOW, most
    assert max(most_waiting.values()) <= WINDOW, most_waiting
    assert most[StepType.KNOWLEDGE_UNITS] == WINDOW, "the window was filled: more was owed than it holds"


def test_a_small_build_finishes_while_another_users_big_build_runs(app: Flask, client, auth, workers) -> None:  # type: ignore[no-untyped-def]
    big = start_build(client, auth, create_path(client, auth, concepts=40))
    workers(GENERATOR_LATENCY_MS="100")
    wait_until(
        lambda: build_of(client, auth, big)["completedConcepts"] >= 4,
        timeout=60,
        message="the big build to be fanning out",
    )
    other: dict[str, Any] = make_user(app, "other@example.com")
    small = start_build(client, other, create_path(client, other, concepts=1, name="Small"))
    wait_for_build(client, other, small, timeout=120)
    assert build_of(client, auth, big)["status"] == "processing", (
        "the small build did not wait for the big one"
    )
    with app.app_context():
        assert db.session.get(Build, big).status == "processing"


def test_a_newcomers_first_unit_steps_get_a_pass_even_when_no_queue_has_room(
    app: Flask, client, auth, redis_server
) -> None:  # type: ignore[no-untyped-def]
    """A decompose step's finish runs a release pass only when a queue has a batch of room (a
    pass per finish cost a third of a lone build's throughput), or when its children are its
    build's first unit steps: a newcomer gets a place even in a full window, and without the
    pass its first units waited for another build's batch to free."""
    redis = redis_server.client()
    busy = start_build(client, auth, create_path(client, auth, concepts=1))
    other = make_user(app, "newcomer@example.com")
    newcomer = start_build(client, other, create_path(client, other, concepts=1, name="New"))
    with app.app_context():
        insert_steps(
            [
                new_step(busy, StepType.KNOWLEDGE_UNITS, n, f"unit {n}", None, n, WorkStatus.QUEUED)
                for n in range(WINDOW)
            ]
        )
        db.session.commit()
    for queue in (DECOMPOSE_QUEUE, GENERATE_KU_QUEUE):  # both windows full
        redis.rpush(Queue(queue, connection=redis).key, *[f"held-{n}" for n in range(WINDOW)])

    with app.test_request_context():
        assert not _worth_a_pass(busy, StepType.SUB_CONCEPTS, has_children=True), "no room, units in flight"
        assert _worth_a_pass(newcomer, StepType.SUB_CONCEPTS, has_children=True), "its first units"
        assert not _worth_a_pass(newcomer, StepType.SUB_CONCEPTS, has_children=False), "no children"
