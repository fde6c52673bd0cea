"""app/jobs/limiter.py in-process against real Redis: a window never admits more than its cap,
however many callers race for it, and a pause holds every call until it ends."""

from __future__ import annotations

import threading
import time
from typing import Any

from app.jobs.limiter import PAUSE_KEY, pause_calls, wait_for_slot
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

    assert asked and 0 < asked[0] <= WINDOW_S, "the first over the cap sleeps until its window ends"
    assert late >= min(first) + WINDOW_S - 0.05


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
