"""app/jobs/limiter.py in-process against real Redis: a window never admits more than its cap,
however many callers race for it, and a pause holds every call until it ends."""

from __future__ import annotations

import threading
import time
from typing import Any

from app.jobs.limiter import PAUSE_KEY, pause_calls, wait_for_slot
from app.jobs.moving_window import MovingWindow
from app.jobs.queues import get_redis

CAP, WINDOW_S = 3, 1


def _limited(app: Any, **extra: Any) -> dict[str, Any]:
    return {
        **app.config,
        "JOB_RATE_LIMIT_MAX": CAP,
        "JOB_RATE_LIMIT_DURATION": WINDOW_S * 1000,
        "JOB_RATE_LIMIT_TOKENS": 0,
        **extra,
    }


def _busiest_window(admissions: list[float]) -> int:
    """The most admissions any window of WINDOW_S seconds, starting at an admission, holds."""
    ordered = sorted(admissions)
    return max(sum(1 for t in ordered if start <= t < start + WINDOW_S) for start in ordered)


def test_calls_racing_from_many_threads_never_exceed_the_cap_in_any_window(app):
    config = _limited(app)
    admissions: list[float] = []
    lock = threading.Lock()

    def call() -> None:
        with app.app_context():
            admitted = wait_for_slot(config)
        with lock:
            admissions.append(admitted)

    threads = [threading.Thread(target=call) for _ in range(2 * CAP)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert len(admissions) == 2 * CAP
    assert _busiest_window(admissions) == CAP  # a racy check-then-hit lets a fourth in


def test_a_call_over_the_cap_waits_for_the_window_instead_of_failing(app):
    config = _limited(app)
    asked: list[float] = []

    def sleep(seconds: float) -> None:
        asked.append(seconds)
        time.sleep(seconds)

    with app.app_context():
        first = [wait_for_slot(config, sleep=sleep) for _ in range(CAP)]
        assert asked == [], "calls within the cap go at once"
        late = wait_for_slot(config, sleep=sleep)

    window_s = WINDOW_S + config["JOB_RATE_LIMIT_MARGIN_MS"] / 1000
    assert asked and 0 < asked[0] <= window_s, "the first over the cap sleeps until its window ends"
    assert late >= min(first) + window_s - 0.01


def test_a_pause_holds_a_call_until_it_ends_even_with_no_limit_set(app):
    config = _limited(app, JOB_RATE_LIMIT_MAX=0)
    asked: list[float] = []

    with app.app_context():
        pause_calls(config, 5)
        wait_for_slot(config, sleep=asked.append)  # records the wait instead of sleeping it

    assert len(asked) == 1 and 4 < asked[0] <= 5


def test_a_shorter_pause_never_shortens_a_longer_one(app):
    # Two workers hit by 429s with different Retry-After: the longer must win, whatever the order.
    config = _limited(app)
    with app.app_context():
        pause_calls(config, 30)
        pause_calls(config, 1)

        paused_until = float(get_redis().get(PAUSE_KEY))

    assert paused_until - time.time() > 25


def _gap_between_two_calls(app: Any, duration_ms: int, margin_ms: int) -> float:
    config = _limited(
        app, JOB_RATE_LIMIT_MAX=1, JOB_RATE_LIMIT_DURATION=duration_ms, JOB_RATE_LIMIT_MARGIN_MS=margin_ms
    )
    with app.app_context():
        first = wait_for_slot(config)
        second = wait_for_slot(config)
    return second - first


def test_a_window_in_milliseconds_is_kept_to_the_millisecond(app):
    """A provider's 1,500 ms window was kept as 2 s (whole seconds): a quarter of its rate lost."""
    assert 1.5 <= _gap_between_two_calls(app, duration_ms=1500, margin_ms=0) < 1.75


def test_the_margin_widens_the_window_calls_are_admitted_in(app):
    """The margin absorbs the time from admission to the request reaching the provider."""
    assert 1.3 <= _gap_between_two_calls(app, duration_ms=1000, margin_ms=300) < 1.55


def test_a_token_window_records_one_entry_a_call_however_many_tokens_it_reserves(app):
    with app.app_context():
        redis = get_redis()
        window = MovingWindow(redis, "test-tokens", limit=90_000, window_ms=60_000)
        assert window.admit(40_000).admitted and window.admit(40_000).admitted
        refused = window.admit(20_000)
        entries = redis.zcard(window.keys[0])

    assert not refused.admitted and 59 < refused.at <= 60, "it waits for the first call to leave"
    assert entries == 2  # not 80,000 list entries, as a window of one entry per token kept


def test_a_lost_tally_is_counted_again_from_the_admissions(app):
    with app.app_context():
        redis = get_redis()
        window = MovingWindow(redis, "test-tally", limit=2, window_ms=60_000)
        assert window.admit().admitted and window.admit().admitted
        redis.delete(window.keys[1])

        assert not window.admit().admitted, "a lost running total must not open the window"


def test_a_request_larger_than_the_cap_runs_alone_once_the_window_is_empty(app):
    with app.app_context():
        window = MovingWindow(get_redis(), "test-large", limit=100, window_ms=300)
        assert window.admit(10).admitted
        assert not window.admit(500).admitted
        time.sleep(0.35)
        assert window.admit(500).admitted
        assert not window.admit(1).admitted, "it took the whole window"
