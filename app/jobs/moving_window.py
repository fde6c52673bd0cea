"""A moving window in Redis, to the millisecond and on Redis' own clock: at most `limit` units
(calls, or tokens) admitted in any `window_ms`, across every process on every machine.

Why not the `limits` library's moving window (which Flask-Limiter still uses for the API): its
windows are whole seconds (a 1,500 ms provider window became 2 s), and each admission is stamped
with the caller's clock read before the round trip, so under a loaded GIL a call stamped late in
one window can land after calls stamped in the next, and the list it checks is no longer in time
order. Here one Lua script reads Redis' `TIME`, prunes, checks and records in one step: admissions
are ordered as Redis runs them, and the window can be a little longer than the provider's (the
margin) to absorb the time from admission to the request reaching the provider.

An admission is one member of a sorted set scored by its time in ms (`<ms>-<seq>:<units>`), with the
window's running total beside it; units leaving the window are subtracted as they are pruned, so
an admission costs O(log n) however large the cap (a token cap of 90,000 is not 90,000 entries).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from redis import Redis
from redis.commands.core import Script

# KEYS[1]: the admissions (sorted set); KEYS[2]: {total, seq} (hash).
# ARGV: limit, window_ms, units. Returns {1, now_ms} when admitted, {0, ms until enough leaves}.
_ADMIT = """
local limit, window, units = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local cutoff = now - window

local function units_of(member)
  return tonumber(string.match(member, ':(%d+)$'))
end

local total = tonumber(redis.call('HGET', KEYS[2], 'total'))
local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', cutoff)
if #gone > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', cutoff)
end
if redis.call('ZCARD', KEYS[1]) == 0 then
  total = 0
elseif total == nil then  -- the tally was lost (not the admissions): count them again
  total = 0
  for _, member in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do total = total + units_of(member) end
else
  for _, member in ipairs(gone) do total = total - units_of(member) end
end

if total + units > limit then
  redis.call('HSET', KEYS[2], 'total', total)
  local need, freed, start = total + units - limit, 0, 0
  while true do
    local batch = redis.call('ZRANGE', KEYS[1], start, start + 99, 'WITHSCORES')
    if #batch == 0 then return {0, 1} end
    for i = 1, #batch, 2 do
      freed = freed + units_of(batch[i])
      if freed >= need then
        return {0, math.max(1, tonumber(batch[i + 1]) + window - now + 1)}
      end
    end
    start = start + 100
  end
end

local seq = redis.call('HINCRBY', KEYS[2], 'seq', 1)
redis.call('ZADD', KEYS[1], now, now .. '-' .. seq .. ':' .. units)  -- unique if seq was lost
redis.call('HSET', KEYS[2], 'total', total + units)
redis.call('PEXPIRE', KEYS[1], window + 1000)
redis.call('PEXPIRE', KEYS[2], window + 1000)
return {1, now}
"""


@dataclass(frozen=True)
class Admission:
    admitted: bool
    at: float  # admitted: Redis' time of the admission, in s; refused: the s to wait before asking again


class MovingWindow:
    """`limit` units in any `window_ms` under `key`, shared through one Redis."""

    def __init__(self, redis: Redis, key: str, limit: int, window_ms: int) -> None:
        self.keys = [f"curriculum-builder:window:{key}", f"curriculum-builder:window:{key}:tally"]
        self.limit, self.window_ms = limit, window_ms
        self._script: Script = redis.register_script(_ADMIT)  # run by its SHA, loaded again if Redis lost it

    def admit(self, units: int = 1) -> Admission:
        """Admit `units` now if the window has room for them (a request of more than the whole
        limit is admitted alone, once the window is empty)."""
        units = max(1, min(units, self.limit))
        admitted, value = cast(
            list[int], self._script(keys=self.keys, args=[self.limit, self.window_ms, units])
        )
        return Admission(bool(admitted), value / 1000)
