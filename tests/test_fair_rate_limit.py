"""The rate limit shared fairly: while two owners' calls wait for slots, each gets about half,
however many calls each has waiting, at the request cap and at the token cap (shared in tokens).
Real Redis, the real limiter, called from threads as worker processes call it."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest
from flask import Flask

from app.jobs.limiter import calls_owned_by, wait_for_slot

LIMIT, WINDOW_MS = 10, 1000
TOKENS_PER_WINDOW = 1000
RUN_S = 6.0


@pytest.fixture
def service_env(service_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    limits = {"JOB_RATE_LIMIT_MAX": str(LIMIT), "JOB_RATE_LIMIT_DURATION": str(WINDOW_MS)}
    for name, value in limits.items():
        monkeypatch.setenv(name, value)
    return {**service_env, **limits}


def _only_the_token_cap(app: Flask) -> None:
    app.config["JOB_RATE_LIMIT_MAX"] = 0
    app.config["JOB_RATE_LIMIT_TOKENS"] = TOKENS_PER_WINDOW


def _share_of_the_few(app: Flask, many: int = 4, tokens: dict[str, int] | None = None) -> tuple[float, int]:
    """`many` callers of one owner and one caller of another ask for slots for RUN_S seconds
    (each call reserving `tokens[owner]`, if given); returns the lone caller's share of what was
    admitted after the first window (calls, or tokens if given), and the total."""
    admitted: list[tuple[str, float]] = []
    lock = threading.Lock()
    deadline = time.time() + RUN_S
    cost = tokens or {}

    def caller(owner: str) -> None:
        with calls_owned_by(owner):
            while time.time() < deadline:
                at = wait_for_slot(app.config, tokens=cost.get(owner, 0))
                with lock:
                    admitted.extend([(owner, at)] * (cost.get(owner, 1)))

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


@pytest.mark.parametrize(
    "few_call_tokens",
    [
        pytest.param(100, id="calls-of-equal-size"),
        # Turns count tokens: half of the tokens is fewer calls for the owner of larger calls,
        # not half of the calls (which would be three quarters of the tokens).
        pytest.param(300, id="the-lone-callers-calls-three-times-as-large"),
    ],
)
def test_at_the_token_cap_two_owners_share_the_tokens_whatever_their_numbers_of_callers(
    app: Flask, few_call_tokens: int
) -> None:
    _only_the_token_cap(app)
    share, total = _share_of_the_few(app, tokens={"user-many": 100, "user-few": few_call_tokens})
    assert total >= 3 * TOKENS_PER_WINDOW, total
    assert 0.4 <= share <= 0.6, f"the lone caller's owner had {share:.2f} of {total} tokens"


def test_at_the_token_cap_first_come_first_served_gives_the_owner_with_more_callers_more(
    app: Flask,
) -> None:
    app.config["RELEASE_POLICY"] = "fifo"
    _only_the_token_cap(app)
    share, total = _share_of_the_few(app, tokens={"user-many": 100, "user-few": 100})
    assert share < 0.4, f"the lone caller's owner had {share:.2f} of {total} tokens"
