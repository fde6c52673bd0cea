"""Fair turns at the rate limit: while several owners' calls wait for slots, each gets its share.

The moving window alone gives a free slot to whichever waiting call asks first, so an owner with
more calls waiting (more workers busy on their steps) takes more slots. Here every waiting call
is listed in Redis under its owner, and each owner's admissions over the last few windows are kept;
a call may try for a slot only while no other waiting owner has had less (or as much, less
recently). So two owners with calls waiting alternate, whatever their numbers of waiting calls.

Each limit keeps its own turns (`limit`: the request cap, the token cap), and an admission
counts what it took from that limit: one request, or the tokens it reserved. So at the token cap
owners share tokens, not calls: an owner whose calls are large gets fewer of them.

Entries expire by score, so a call whose process died stops counting as waiting by itself.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter

from redis import Redis

KEY_PREFIX = "curriculum-builder:limit"
SEPARATOR = "\x1f"
# A waiting call renews its entry each time it looks; it sleeps at most a window between looks.
STALE_AFTER_S = 5.0
# Admissions are remembered this many windows: slots free up in bursts, and an owner with more
# callers takes more of a burst; a longer memory gives the other owner the next burst's first.
MEMORY_WINDOWS = 3


class FairTurn:
    """One call's place among the waiting owners."""

    def __init__(self, redis: Redis, owner: str, window_s: float, limit: str = "requests") -> None:
        self.redis, self.owner, self.window_s = redis, owner, window_s
        self.member = f"{owner}{SEPARATOR}{uuid.uuid4().hex}"
        self.waiting_key = f"{KEY_PREFIX}-waiting:{limit}"
        self.admitted_key = f"{KEY_PREFIX}-admitted:{limit}"

    def my_turn(self) -> bool:
        """True unless another owner with a call waiting was admitted less lately,
        or as much but less recently (ties go round-robin)."""
        now = time.time()
        pipe = self.redis.pipeline(transaction=False)
        pipe.zremrangebyscore(self.waiting_key, "-inf", now)
        pipe.zremrangebyscore(self.admitted_key, "-inf", now - MEMORY_WINDOWS * self.window_s)
        pipe.zrange(self.waiting_key, 0, -1)
        pipe.zrange(self.admitted_key, 0, -1, withscores=True)
        _, _, waiting, admitted = pipe.execute()
        others = {_owner(member) for member in waiting} - {self.owner}
        if not others:
            return True
        counts: Counter[str] = Counter()
        last: dict[str, float] = {}
        for member, at in admitted:
            owner, cost = _owner_and_cost(member)
            counts[owner] += cost
            last[owner] = max(last.get(owner, 0.0), at)
        mine = (counts[self.owner], last.get(self.owner, 0.0))
        return all(mine <= (counts[owner], last.get(owner, 0.0)) for owner in others)

    def waiting(self) -> None:
        """List (or renew) this call as waiting."""
        self.redis.zadd(self.waiting_key, {self.member: time.time() + self.window_s + STALE_AFTER_S})

    def admitted(self, cost: int = 1) -> None:
        """Count the admission (`cost` taken from the limit) for the owner and stop waiting."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.zadd(self.admitted_key, {f"{self.member}{SEPARATOR}{cost}": time.time()})
        pipe.expire(self.admitted_key, int(MEMORY_WINDOWS * self.window_s) + 60)
        pipe.zrem(self.waiting_key, self.member)
        pipe.execute()

    def leave(self) -> None:
        """Stop waiting without a slot (interrupted)."""
        self.redis.zrem(self.waiting_key, self.member)


def _owner(member: bytes) -> str:
    return member.decode().split(SEPARATOR, 1)[0]


def _owner_and_cost(member: bytes) -> tuple[str, int]:
    owner, _, cost = member.decode().split(SEPARATOR, 2)
    return owner, int(cost)
