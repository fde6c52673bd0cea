"""A per-user cap on open SSE streams, counted in Redis across every web process.

Each open stream holds a slot: a member of the user's sorted set, scored by when it lapses
(Redis' own clock). A live stream renews its slot with every keep-alive; a slot whose process
crashed lapses on its own, so a dead process cannot leak a user's streams.
"""

from __future__ import annotations

import uuid
from typing import cast

from redis import Redis

_CLAIM = """
local now = redis.call('TIME')
local now_s = tonumber(now[1]) + tonumber(now[2]) / 1e6
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_s)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], now_s + tonumber(ARGV[3]), ARGV[1])
redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[3])))
return 1
"""

_RENEW = """
local now = redis.call('TIME')
local now_s = tonumber(now[1]) + tonumber(now[2]) / 1e6
redis.call('ZADD', KEYS[1], 'XX', now_s + tonumber(ARGV[2]), ARGV[1])
redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2])))
return 1
"""


def _key(user_id: int) -> str:
    return f"sse-streams:{user_id}"


class StreamSlot:
    """One open stream's place in its user's count."""

    def __init__(self, redis: Redis, user_id: int, lapse_s: float) -> None:
        self._redis, self._key, self._lapse_s = redis, _key(user_id), lapse_s
        self.id = uuid.uuid4().hex

    def claim(self, cap: int) -> bool:
        """Take a slot unless the user already holds `cap` live ones."""
        return bool(self._redis.eval(_CLAIM, 1, self._key, self.id, cap, self._lapse_s))

    def renew(self) -> None:
        self._redis.eval(_RENEW, 1, self._key, self.id, self._lapse_s)

    def release(self) -> None:
        self._redis.zrem(self._key, self.id)


def open_streams(redis: Redis, user_id: int) -> int:
    """Slots held now (lapsed ones not counted)."""
    now_s = float(cast(tuple[int, int], redis.time())[0])
    return int(cast(int, redis.zcount(_key(user_id), f"({now_s}", "+inf")))
