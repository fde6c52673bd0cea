"""The AI provider's limits, shared by every worker process on every machine.

Requests: a moving window in Redis (`moving_window`, on Redis' clock, to the millisecond),
JOB_RATE_LIMIT_MAX calls per JOB_RATE_LIMIT_DURATION ms (0 turns it off), kept
JOB_RATE_LIMIT_MARGIN_MS longer than the provider's so the time from admission to the request
reaching it cannot put one call too many in the provider's window. Tokens: JOB_RATE_LIMIT_TOKENS
per the same window, in a second moving window; a call first reserves its most (prompt estimate + max output
tokens), and is charged more after the call if the provider reported more, so no window ever
holds more than the cap. A pause (a 429's Retry-After, or a provider that is down) stops every
worker's calls until it ends. A call over a limit waits; it neither fails nor uses up an attempt.
With RELEASE_POLICY=fair, each limit's room goes round the owners with calls waiting
(`calls_owned_by`, fair_limit): requests by calls, tokens by tokens reserved, not to whichever
call asks first.

Waiting costs Redis nothing while it sleeps: a waiter sleeps until the window's oldest call
leaves it (when a slot can be free), and inside a process only one waiter per window asks Redis
at a time; the others wait on a process-local gate for it. A wait is interruptible: a cancel or
a stopping worker ends it at once (app.jobs.lease), and the step is put back.

Whoever makes the calls may listen to the waits (`waits_reported_to`): it hears when a wait
starts (with when the next slot should come) and when it ends, so the work that waits can say
so; the generators need not know.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Protocol, TypeVar, cast

from redis import Redis
from redis.commands.core import Script
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from app.jobs.fair_limit import FairTurn
from app.jobs.lease import interruptible_sleep, waiting_for_slot
from app.jobs.moving_window import MovingWindow
from app.jobs.queues import connect_redis, redis_settings_key

LIMIT_KEY = "generator-calls"
TOKEN_KEY = "generator-tokens"
PAUSE_KEY = "curriculum-builder:generator-paused-until"
MIN_WAIT_S = 0.05
# A Sentinel failover leaves no master for a few seconds; a call waits that out instead of
# failing its step's attempt. A longer outage fails the attempt (and it is retried as usual).
REDIS_OUTAGE_WAIT_S = 30.0
OUTAGE_RETRY_S = 0.5
GATE_CHECK_S = 0.25  # a waiter behind the gate looks this often whether it is interrupted
T = TypeVar("T")


class WaitListener(Protocol):
    """Told about the waits of the calls made inside `waits_reported_to`."""

    def waiting(self, next_slot_at: float) -> None:
        """A call waits (again); `next_slot_at` is the wall-clock time its next slot should come."""

    def done(self) -> None:
        """The call goes on (admitted, or interrupted), whether or not it waited."""


_listener: ContextVar[WaitListener | None] = ContextVar("rate_limit_wait_listener", default=None)
_owner: ContextVar[str | None] = ContextVar("rate_limit_call_owner", default=None)


@contextmanager
def calls_owned_by(owner: str | None) -> Iterator[None]:
    """The calls made inside the block are `owner`'s: with RELEASE_POLICY=fair, owners with
    calls waiting share the slots (fair_limit)."""
    token = _owner.set(owner)
    try:
        yield
    finally:
        _owner.reset(token)


@contextmanager
def waits_reported_to(listener: WaitListener) -> Iterator[None]:
    """Report every wait for a slot (or a pause) made inside the block to `listener`."""
    token = _listener.set(listener)
    try:
        yield
    finally:
        _listener.reset(token)


def _sleep_reported(sleep: Callable[[float], None], seconds: float) -> None:
    listener = _listener.get()
    if listener is not None:
        listener.waiting(time.time() + seconds)
    sleep(seconds)


@contextmanager
def _one_call() -> Iterator[None]:
    """Tell the listener when the call goes on, so it knows where each wait ends."""
    try:
        yield
    finally:
        listener = _listener.get()
        if listener is not None:
            listener.done()


def rate_limit_per_s(config: Mapping[str, Any]) -> float | None:
    """The calls a second the limit lets through in the long run (None: no limit)."""
    if config["JOB_RATE_LIMIT_MAX"] <= 0:
        return None
    # The provider's window, not the margin's: a fraction of a per-cent for a per-minute limit.
    return float(config["JOB_RATE_LIMIT_MAX"]) * 1000 / int(config["JOB_RATE_LIMIT_DURATION"])


_clients: dict[tuple[str, ...], Redis] = {}
_windows: dict[tuple[Any, ...], MovingWindow] = {}


def _redis(config: Mapping[str, Any]) -> Redis:
    """One client per Redis setting (so the limiter follows a Sentinel failover with it)."""
    key = redis_settings_key(config)
    if key not in _clients:
        _clients[key] = connect_redis(config)
    return _clients[key]


def _window_ms(config: Mapping[str, Any]) -> int:
    """The window calls are admitted in: the provider's, and the margin."""
    return int(config["JOB_RATE_LIMIT_DURATION"]) + int(config.get("JOB_RATE_LIMIT_MARGIN_MS", 0))


def _window_s(config: Mapping[str, Any]) -> float:
    return _window_ms(config) / 1000


def _window(config: Mapping[str, Any], key: str, limit: int) -> MovingWindow | None:
    if limit <= 0:
        return None
    cache_key = (redis_settings_key(config), key, limit, _window_ms(config))
    if cache_key not in _windows:
        _windows[cache_key] = MovingWindow(_redis(config), key, limit, _window_ms(config))
    return _windows[cache_key]


class _Gate:
    """The one waiter of this process that asks Redis for a window's slot, and when it expects one."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.next_slot_at: float | None = None


_gates: dict[str, _Gate] = {}
_gates_lock = threading.Lock()


def _gate(key: str) -> _Gate:
    with _gates_lock:
        return _gates.setdefault(key, _Gate())


def _pass_gate(gate: _Gate) -> None:
    """Wait for the gate in short slices (an interrupt lands between them), telling the listener
    once when the waiter ahead expects its slot: a hundred waiters writing their row at every
    slot the one ahead takes was a storm of writes for the database."""
    reported = False
    while not gate.lock.acquire(timeout=GATE_CHECK_S):
        listener = _listener.get()
        if listener is not None and gate.next_slot_at is not None and not reported:
            reported = True
            listener.waiting(gate.next_slot_at)


def _take(
    config: Mapping[str, Any],
    window: MovingWindow | None,
    cost: int,
    sleep: Callable[[float], None],
    turn: FairTurn | None = None,
) -> float:
    """Block until the window admits `cost` (and, with `turn`, it is the owner's turn); returns
    the time of admission (Redis' clock). A call larger than the whole cap still runs, alone."""
    if window is None or cost <= 0:
        return time.time()
    # One waiter per process asks Redis for each window (per owner, when owners take turns: a
    # process's waiters of one owner must not hold back another owner's, or turns would be lost).
    key = window.keys[0]
    gate = _gate(key if turn is None else f"{key}{turn.owner}")
    _pass_gate(gate)
    try:
        while True:
            _wait_for_pause(config, sleep)
            if turn is not None and not turn.my_turn():
                turn.waiting()
                gate.next_slot_at = time.time() + MIN_WAIT_S
                _sleep_reported(sleep, MIN_WAIT_S)
                continue
            admission = window.admit(cost)
            if admission.admitted:
                if turn is not None:
                    turn.admitted(cost)
                return admission.at
            if turn is not None:
                turn.waiting()
            wait_s = max(MIN_WAIT_S, min(admission.at, window.window_ms / 1000))
            gate.next_slot_at = time.time() + wait_s
            _sleep_reported(sleep, wait_s)
    finally:
        gate.next_slot_at = None
        gate.lock.release()
        if turn is not None:
            turn.leave()


def _through_outage(call: Callable[[], T], sleep: Callable[[float], None]) -> T:
    """Run `call`, again while Redis is unreachable, for up to REDIS_OUTAGE_WAIT_S."""
    deadline = time.monotonic() + REDIS_OUTAGE_WAIT_S
    while True:
        try:
            return call()
        except (RedisConnectionError, RedisTimeoutError):
            if time.monotonic() >= deadline:
                raise
            sleep(OUTAGE_RETRY_S)


def wait_for_slot(
    config: Mapping[str, Any], tokens: int = 0, sleep: Callable[[float], None] = interruptible_sleep
) -> float:
    """Block until both windows admit one more call (reserving `tokens`); returns the time of
    admission, on Redis' clock (the clock the window is kept by)."""

    def _admit() -> float:
        _wait_for_pause(config, sleep)  # a pause holds even when no limit is configured
        token_window = _window(config, TOKEN_KEY, config["JOB_RATE_LIMIT_TOKENS"])
        _take(config, token_window, tokens, sleep, _fair_turn(config, "tokens") if tokens > 0 else None)
        request_window = _window(config, LIMIT_KEY, config["JOB_RATE_LIMIT_MAX"])
        return _take(config, request_window, 1, sleep, _fair_turn(config, "requests"))

    with _one_call(), waiting_for_slot():
        return _through_outage(_admit, sleep)


def takes_fair_turns(config: Mapping[str, Any]) -> bool:
    """Whether calls take turns by owner at a limit (so their owner must be known)."""
    limited = config["JOB_RATE_LIMIT_MAX"] > 0 or config["JOB_RATE_LIMIT_TOKENS"] > 0
    return bool(config.get("RELEASE_POLICY", "fair") == "fair" and limited)


def _fair_turn(config: Mapping[str, Any], limit: str) -> FairTurn | None:
    """The call's place among owners waiting for `limit` (None: first come, first served)."""
    if not takes_fair_turns(config):
        return None
    return FairTurn(_redis(config), _owner.get() or "-", _window_s(config), limit)


def charge_tokens(
    config: Mapping[str, Any], tokens: int, sleep: Callable[[float], None] = interruptible_sleep
) -> None:
    """Charge tokens a call used beyond what it reserved (waiting for room, so later calls see them)."""
    window = _window(config, TOKEN_KEY, config["JOB_RATE_LIMIT_TOKENS"])
    with _one_call():
        _through_outage(lambda: _take(config, window, tokens, sleep), sleep)


def pause_calls(config: Mapping[str, Any], seconds: float) -> None:
    """Stop every worker's generator calls for `seconds` (never shortening a longer pause).

    One Lua script compares and sets in Redis: a GET then a SET from Python let two workers
    interleave, and the shorter pause could overwrite the longer one."""
    until = time.time() + seconds
    script = _extend_pause_script(config)
    _through_outage(
        lambda: script(keys=[PAUSE_KEY], args=[repr(until), max(1, int(seconds * 1000))]), time.sleep
    )


# Redis 7.0 (Debian's) has no SET ... GT, so the comparison runs server-side in Lua.
_EXTEND_PAUSE = """
local current = redis.call('GET', KEYS[1])
if current and tonumber(current) >= tonumber(ARGV[1]) then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""
_scripts: dict[tuple[str, ...], Script] = {}


def _extend_pause_script(config: Mapping[str, Any]) -> Script:
    key = redis_settings_key(config)
    if key not in _scripts:
        _scripts[key] = _redis(config).register_script(_EXTEND_PAUSE)
    return _scripts[key]


def _wait_for_pause(config: Mapping[str, Any], sleep: Callable[[float], None]) -> None:
    raw = _redis(config).get(PAUSE_KEY)
    if raw is not None:
        left = float(cast(bytes, raw)) - time.time()
        if left > 0:
            _sleep_reported(sleep, left)
