"""Fair release: which owed jobs go to Redis next, so one owner's big batch never fills a queue.

RQ queues are FIFO: whatever is enqueued first runs first. So owed work is not enqueued all at
once; a queue holds at most a window of jobs (queued + running) at a time, and as jobs finish,
the free places are shared out here: to the owner with the fewest jobs in flight first (ties
go round-robin, after the owner served last), then to that owner's group (a build) with the
fewest. A lone group may take the whole window, so with no contention nothing waits.

This module knows owners, groups and counts only; a pipeline reads them from its database,
calls `share_out`, and marks and enqueues what it is given (at the front of the queue for
`owners_behind`: a window's worth of another owner's queued jobs is still a wait). `run_exclusively` keeps two
processes from sharing out the same free places at once (which would overfill the window).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, cast

from redis import Redis
from redis.exceptions import RedisError

Policy = Literal["fair", "fifo"]

LOCK_KEY = "curriculum-builder:release-lock"
WANTED_KEY = "curriculum-builder:release-wanted"
LAST_OWNER_KEY = "curriculum-builder:release-last-owner:{}"
# Short, and renewed while the pass runs: a process killed holding the lock stops every release
# only until it lapses (a 45 s lock once held a build past its test's deadline after a SIGKILL).
# A pass waiting on the database keeps it by renewal; it also checks it still holds the lock
# before it commits (`still_held`), so a lapsed lock overfills nothing.
LOCK_TTL_MS = 3_000
LOCK_RENEW_S = 1.0
# A process that finds more to release after its pass goes round again, but not forever: it has
# work of its own. What it leaves is released by the next finish or the recovery sweep.
MAX_ROUNDS = 20

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


@dataclass(frozen=True)
class Group:
    """One batch of work of one owner (a build): what it holds in Redis and what it is owed."""

    key: str
    owner: str
    in_flight: int
    owed: int
    age: int = 0  # lower is older: the order among one owner's groups (and the fifo policy)


def share_out(
    groups: list[Group], free: int, policy: Policy = "fair", last_owner: str | None = None
) -> tuple[dict[str, int], str | None]:
    """How many of its owed jobs each group may release into `free` places, and the owner
    served last (where the next pass's round-robin starts). With the fair policy an owner with
    nothing in flight gets one place even when none is free (`_newcomers`).

    fair: each place goes to the owner with the fewest jobs in flight (counting those just
    given), ties broken round-robin after `last_owner`; within the owner, to the group with the
    fewest. fifo: the oldest group takes all it is owed, then the next."""
    given: dict[str, int] = {}
    wanting = [group for group in groups if group.owed > 0]
    if not wanting:
        return given, last_owner
    if policy == "fair":
        given, last_owner = _newcomers(groups, wanting, last_owner)
        free -= len(given)  # taken from the free places first; past the window only when none is
    if free <= 0:
        return given, last_owner
    if policy == "fifo":
        for group in sorted(wanting, key=lambda g: (g.age, g.key)):
            take = min(group.owed, free)
            if take:
                given[group.key] = take
                free -= take
                last_owner = group.owner
        return given, last_owner
    held = {group.key: group.in_flight + given.get(group.key, 0) for group in groups}
    owed = {group.key: group.owed - given.get(group.key, 0) for group in wanting}
    owners = sorted({group.owner for group in wanting})
    owner_held = {owner: sum(held[g.key] for g in groups if g.owner == owner) for owner in owners}
    by_owner = {owner: [g for g in wanting if g.owner == owner] for owner in owners}
    for _ in range(free):
        candidates = [owner for owner in owners if any(owed[g.key] for g in by_owner[owner])]
        if not candidates:
            break
        owner = min(candidates, key=lambda o: (owner_held[o], _turn(o, owners, last_owner)))
        group = min((g for g in by_owner[owner] if owed[g.key]), key=lambda g: (held[g.key], g.age, g.key))
        given[group.key] = given.get(group.key, 0) + 1
        owed[group.key] -= 1
        held[group.key] += 1
        owner_held[owner] += 1
        last_owner = owner
    return given, last_owner


def _newcomers(
    groups: list[Group], wanting: list[Group], last_owner: str | None
) -> tuple[dict[str, int], str | None]:
    """One place for each owner with nothing in flight, beyond the window if it is full: a
    newcomer's first job never waits for another owner's job to finish (so the queue holds at
    most the window plus one job per owner; one build never more than the window)."""
    given: dict[str, int] = {}
    busy = {group.owner for group in groups if group.in_flight > 0}
    for group in sorted(wanting, key=lambda g: (g.owner, g.age, g.key)):
        if group.owner not in busy:
            given[group.key] = 1
            busy.add(group.owner)
            last_owner = group.owner
    return given, last_owner


def owners_behind(groups: list[Group], workers: int) -> set[str]:
    """While some owner holds more than its share of the queue's workers, the owners holding
    less than their share: what they are given goes to the front of the queue, so a newcomer does
    not wait behind the bigger owner's queued jobs. Only up to that share: beyond it, jumping the
    queue would starve the other owner's queued jobs of workers.

    When no owner is over its share (many owners, a job or so each), nobody jumps: the release
    order is already fair, and jumping then starved whoever was queued at the back. With 40
    owners on 5 workers, the owners just served had nothing in flight, went to the front, were
    served again, and so on: 35 of 40 were never served in a simulated 300 rounds (and 28 of 40
    builds showed no event for a minute in the 200-page benchmark)."""
    held: dict[str, int] = {}
    for group in groups:
        held[group.owner] = held.get(group.owner, 0) + group.in_flight
    if len(held) < 2:
        return set()
    share = max(1, workers // len(held))
    if max(held.values()) <= share:
        return set()
    return {owner for owner, count in held.items() if count < share}


def _turn(owner: str, owners: list[str], last_owner: str | None) -> int:
    """Round-robin order: the owner just after `last_owner` comes first, `last_owner` last."""
    if last_owner is None:
        return owners.index(owner)
    after = sum(1 for o in owners if o <= last_owner)
    return (owners.index(owner) - after) % len(owners)


def last_owner(redis: Redis, queue_name: str) -> str | None:
    raw = cast(bytes | None, redis.get(LAST_OWNER_KEY.format(queue_name)))
    return raw.decode() if raw is not None else None


def remember_last_owner(redis: Redis, queue_name: str, owner: str | None) -> None:
    """Store the owner served last, so the next pass's ties start after them."""
    if owner is not None:
        redis.set(LAST_OWNER_KEY.format(queue_name), owner, ex=3600)


def _holder_check(redis: Redis, token: str) -> Callable[[], bool]:
    def still_held() -> bool:
        return redis.get(LOCK_KEY) == token.encode()

    return still_held


def _keep_lock(redis: Redis, token: str, done: threading.Event) -> None:
    """Renew the lock while its pass runs (and only while it is still this pass's)."""
    while not done.wait(LOCK_RENEW_S):
        try:
            if not redis.eval(_RENEW, 1, LOCK_KEY, token, LOCK_TTL_MS):
                return
        except RedisError:
            return  # the pass's own Redis calls fail too; still_held() then refuses its commit


def run_exclusively(redis: Redis, release_pass: Callable[[Callable[[], bool]], int]) -> int:
    """Run `release_pass(still_held)` in one process at a time; returns how many jobs it released.

    The pass calls `still_held()` just before it commits, and commits nothing if it is False.
    A caller that finds the lock taken marks a release as wanted and returns at once: the
    holder runs another pass when it is done, so the places this caller freed are not left
    empty (its database change is committed before it asks)."""
    redis.set(WANTED_KEY, "1", ex=60)
    released = 0
    for _ in range(MAX_ROUNDS):
        token = uuid.uuid4().hex
        if not redis.set(LOCK_KEY, token, nx=True, px=LOCK_TTL_MS):
            return released
        done = threading.Event()
        renewer = threading.Thread(target=_keep_lock, args=(redis, token, done), daemon=True)
        renewer.start()
        try:
            redis.delete(WANTED_KEY)
            released += release_pass(_holder_check(redis, token))
        finally:
            done.set()
            renewer.join()
            redis.eval(_UNLOCK, 1, LOCK_KEY, token)
        if not redis.exists(WANTED_KEY):
            return released
    return released
