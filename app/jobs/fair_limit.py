"""Fair turns at the rate limit: while several owners' calls wait for slots, each gets its share.

The moving window alone gives a free slot to whichever waiting call asks first, so an owner with
more calls waiting (more workers busy on their steps) takes more slots. Here every waiting call
is listed in Redis under its owner, and each owner's admissions over the last few windows are kept;
a call may try for a slot only while no other waiting owner has had fewer (or as many, less
recently). So two owners with calls waiting alternate, whatever their numbers of waiting calls.

Entries expire by score, so a call whose process died stops counting as waiting by itself.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter

from redis import Redis

WAITING_KEY = "curriculum-builder:limit-waiting"
ADMITTED_KEY = "curriculum-builder:limit-admitted"
SEPARATOR = "\x1f"
# A waiting call renews its entry each time it looks; it sleeps at most a window between looks.
STALE_AFTER_S = 5.0
# Admissions are remembered this many windows: slots free up in bursts, and an owner with more
# callers takes more of a burst; a longer memory gives the other owner the next burst's first.
MEMORY_WINDOWS = 3


class FairTurn:
    """One call's place among the waiting owners."""

    def __init__(self, redis: Redis, owner: str, window_s: float) -> None:
        self.redis, self.owner, self.window_s = redis, owner, window_s
        self.member = f"{owner}{SEPARATOR}{uuid.uuid4().hex}"

    def my_turn(self) -> bool:
        """True unless another owner with a call waiting was admitted fewer times lately,
        or as many times but less recently (ties go round-robin)."""
        now = time.time()
        pipe = self.redis.pipeline(transaction=False)
        pipe.zremrangebyscore(WAITING_KEY, "-inf", now)
        pipe.zremrangebyscore(ADMITTED_KEY, "-inf", now - MEMORY_WINDOWS * self.window_s)
        pipe.zrange(WAITING_KEY, 0, -1)
        pipe.zrange(ADMITTED_KEY, 0, -1, withscores=True)
        _, _, waiting, admitted = pipe.execute()
        others = {_owner(member) for member in waiting} - {self.owner}
        if not others:
            return True
        counts: Counter[str] = Counter()
        last: dict[str, float] = {}
        for member, at in admitted:
            owner = _owner(member)
            counts[owner] += 1
            last[owner] = max(last.get(owner, 0.0), at)
        mine = (counts[self.owner], last.get(self.owner, 0.0))
        return all(mine <= (counts[owner], last.get(owner, 0.0)) for owner in others)

    def waiting(self) -> None:
        """List (or renew) this call as waiting."""
        self.redis.zadd(WAITING_KEY, {self.member: time.time() + self.window_s + STALE_AFTER_S})

    def admitted(self) -> None:
        """Count the admission for the owner and stop waiting."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.zadd(ADMITTED_KEY, {self.member: time.time()})
        pipe.expire(ADMITTED_KEY, int(MEMORY_WINDOWS * self.window_s) + 60)
        pipe.zrem(WAITING_KEY, self.member)
        pipe.execute()

    def leave(self) -> None:
        """Stop waiting without a slot (interrupted)."""
        self.redis.zrem(WAITING_KEY, self.member)


def _owner(member: bytes) -> str:
    return member.decode().split(SEPARATOR, 1)[0]
