"""The rate limit shared fairly: while two owners' calls wait for slots, each gets about half,
however many calls each has waiting. Real Redis, the real limiter, called from threads as
worker processes call it."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest
from flask import Flask

from app.jobs.limiter import calls_owned_by, wait_for_slot

LIMIT, WINDOW_MS = 10, 1000
RUN_S = 6.0


@pytest.fixture
def service_env(service_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    limits = {"JOB_RATE_LIMIT_MAX": str(LIMIT), "JOB_RATE_LIMIT_DURATION": str(WINDOW_MS)}
    for name, value in limits.items():
        monkeypatch.setenv(name, value)
    return {**service_env, **limits}


def _share_of_the_few(app: Flask, many: int = 4) -> tuple[float, int]:
    """`many` callers of one owner and one caller of another ask for slots for RUN_S seconds;
    returns the lone caller's share of the slots admitted after the first window, and the total."""
    admitted: list[tuple[str, float]] = []
    lock = threading.Lock()
    deadline = time.time() + RUN_S

    def caller(owner: str) -> None:
        with calls_owned_by(owner):
            while time.time() < deadline:
                at = wait_for_slot(app.config)
                with lock:
                    admitted.append((owner, at))

    threads = [threading.Thread(target=caller, args=("user-many",)) for _ in range(many)]
    threads.append(threading.Thread(target=caller, args=("user-few",)))
    started = time.time()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=RUN_S + 10)
    # Over whole windows from the first's end to the deadline: calls still waiting at the
    # deadline (one per caller, so more of the owner with more callers) are left out.
    steady = Counter(owner for owner, at in admitted if started + WINDOW_MS / 1000 <= at < deadline)
    total = sum(steady.values())
    return steady["user-few"] / total, total


def test_two_owners_waiting_share_the_slots_whatever_their_numbers_of_callers(app: Flask) -> None:
    share, total = _share_of_the_few(app)
    assert total >= 3 * LIMIT, total
    assert 0.4 <= share <= 0.6, f"the lone caller's owner had {share:.2f} of {total} slots"


def test_first_come_first_served_gives_the_owner_with_more_callers_more(app: Flask) -> None:
    """The same run with RELEASE_POLICY=fifo: what the fair turns correct."""
    app.config["RELEASE_POLICY"] = "fifo"
    share, total = _share_of_the_few(app)
    assert share < 0.4, f"the lone caller's owner had {share:.2f} of {total} slots"
