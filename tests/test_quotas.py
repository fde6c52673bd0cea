"""Quotas that keep one user (or one worker) from taking more than their share: pending builds
per user, a dead-letter retry within the active-build cap, and a provider pause that only grows."""

from __future__ import annotations

import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from flask import Flask
from sqlalchemy import func, select

from app.extensions import db
from app.jobs.limiter import PAUSE_KEY, pause_calls
from app.models import Build, BuildStatus, BuildStep, DeadLetter, LearningPath, StepType, User, WorkStatus
from tests.helpers import create_path, start_build
from tests.helpers.users import make_user
from tests.helpers.web import post_form, sign_in
from tests.services import start_gunicorn

THREADS = 24
ROUNDS = 15


def _pause_concurrently(config: dict[str, Any], seconds: list[float]) -> None:
    barrier = threading.Barrier(len(seconds))

    def call(duration: float) -> None:
        barrier.wait()
        pause_calls(config, duration)

    threads = [threading.Thread(target=call, args=(s,)) for s in seconds]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_concurrent_pauses_never_shorten_the_longest_one(redis_server):
    config = {"REDIS_URL": redis_server.url}
    connection = redis_server.client()
    for _ in range(ROUNDS):
        connection.delete(PAUSE_KEY)
        seconds = [100.0 * (i + 1) for i in range(THREADS)]
        random.shuffle(seconds)
        started = time.time()

        _pause_concurrently(config, seconds)

        until = float(connection.get(PAUSE_KEY))
        assert until >= started + max(seconds), "a shorter pause overwrote the longest"
        assert connection.pttl(PAUSE_KEY) > (max(seconds) - 5) * 1000


def test_a_shorter_pause_leaves_a_longer_one_alone_and_a_longer_one_extends_it(redis_server):
    config = {"REDIS_URL": redis_server.url}
    connection = redis_server.client()
    connection.delete(PAUSE_KEY)

    pause_calls(config, 60)
    first = float(connection.get(PAUSE_KEY))
    pause_calls(config, 5)
    kept = float(connection.get(PAUSE_KEY))
    pause_calls(config, 120)
    extended = float(connection.get(PAUSE_KEY))

    assert kept == first
    assert extended > first + 50 and connection.pttl(PAUSE_KEY) > 115_000


# --- pending builds per user ---------------------------------------------------------------


def _build_counts(app: Flask, user_email: str) -> dict[str, int]:
    with app.app_context():
        user = db.session.scalar(select(User).where(User.email == user_email))
        rows = db.session.execute(
            select(Build.status, func.count(Build.id))
            .where(Build.triggered_by == user.id)
            .group_by(Build.status)
        ).all()
        return dict(rows) | {"steps": db.session.scalar(select(func.count(BuildStep.id)))}


def test_a_start_past_the_pending_cap_is_a_429_that_says_why_and_writes_nothing(app, client, auth):
    app.config.update(MAX_ACTIVE_BUILDS_PER_USER=2, MAX_PENDING_BUILDS_PER_USER=3)
    paths = [create_path(client, auth, name=f"Path {i}") for i in range(6)]
    for path_id in paths[:5]:
        start_build(client, auth, path_id)
    before = _build_counts(app, "designer@example.com")
    assert (before["processing"], before["pending"]) == (2, 3)

    response = client.post(f"/api/jobs/build/{paths[5]}", headers=auth)

    assert response.status_code == 429
    assert response.get_json() == {
        "success": False,
        "error": {
            "code": "too_many_builds",
            "message": "You already have 3 builds waiting to start (the most allowed); "
            "start more when some of them have run.",
        },
    }
    assert _build_counts(app, "designer@example.com") == before


def test_the_pending_cap_is_per_user(app, client, auth):
    app.config.update(MAX_ACTIVE_BUILDS_PER_USER=1, MAX_PENDING_BUILDS_PER_USER=1)
    other = make_user(app, "other@example.com")
    for path_id in [create_path(client, auth, name=f"Mine {i}") for i in range(2)]:
        start_build(client, auth, path_id)

    theirs = [create_path(client, other, name=f"Theirs {i}") for i in range(2)]

    assert [client.post(f"/api/jobs/build/{p}", headers=other).status_code for p in theirs] == [202, 202]


def test_the_build_form_shows_the_pending_cap_message_beside_the_button(app, client):
    app.config.update(MAX_ACTIVE_BUILDS_PER_USER=1, MAX_PENDING_BUILDS_PER_USER=1)
    sign_in(app, client, "ada@example.com")
    with app.app_context():
        owner = db.session.scalar(select(User.id).where(User.email == "ada@example.com"))
        paths = [LearningPath(owner_id=owner, name=f"Path {i}", topic="stats") for i in range(3)]
        db.session.add_all(paths)
        db.session.commit()
        ids = [p.id for p in paths]
    for path_id in ids[:2]:
        assert post_form(client, f"/paths/{path_id}/build", {}, page=f"/paths/{path_id}").status_code == 302

    refused = post_form(client, f"/paths/{ids[2]}/build", {}, page=f"/paths/{ids[2]}")

    assert refused.status_code == 429
    assert "builds waiting to start (the most allowed)" in refused.get_data(as_text=True)
    assert _build_counts(app, "ada@example.com") == {"processing": 1, "pending": 1, "steps": 2}


# --- a dead-letter retry within MAX_ACTIVE_BUILDS_PER_USER ---------------------------------


def _failed_build_with_dead_letter(app: Flask, owner_email: str, active_builds: int) -> int:
    """A failed build with one dead step, beside `active_builds` processing builds of the same
    owner (rows written directly: the quota is checked before any worker would be involved)."""
    with app.app_context():
        owner = db.session.scalar(select(User.id).where(User.email == owner_email))
        paths = [LearningPath(owner_id=owner, name=f"Path {i}", topic="t") for i in range(active_builds + 1)]
        db.session.add_all(paths)
        db.session.flush()
        for path in paths[1:]:
            db.session.add(Build(path_id=path.id, triggered_by=owner, status=BuildStatus.PROCESSING))
        failed = Build(path_id=paths[0].id, triggered_by=owner, status=BuildStatus.FAILED, error_count=1)
        db.session.add(failed)
        db.session.flush()
        step = BuildStep(build_id=failed.id, type=StepType.CONCEPTS, status=WorkStatus.FAILED, error="boom")
        db.session.add(step)
        db.session.flush()
        letter = DeadLetter(build_id=failed.id, step_id=step.id, original_queue="build-path", error="boom")
        db.session.add(letter)
        db.session.commit()
        return letter.id


def _letter_state(app: Flask, letter_id: int) -> tuple[str, str, int, bool]:
    with app.app_context():
        letter = db.session.get(DeadLetter, letter_id)
        build = db.session.get(Build, letter.build_id)
        return build.status, letter.step.status, build.error_count, letter.retried_at is None


def test_a_dead_letter_retry_that_would_pass_the_active_cap_is_a_429_and_changes_nothing(app, client, auth):
    app.config.update(MAX_ACTIVE_BUILDS_PER_USER=2)
    letter_id = _failed_build_with_dead_letter(app, "designer@example.com", active_builds=2)

    response = client.post(f"/api/dead-letter/{letter_id}/retry", headers=auth)

    assert response.status_code == 429
    assert response.get_json()["error"] == {
        "code": "too_many_builds",
        "message": "This build's owner already has 2 builds running or paused (the most allowed); "
        "retry the dead letter when one of them has finished.",
    }
    assert _letter_state(app, letter_id) == ("failed", "failed", 1, True)


def test_a_dead_letter_retry_within_the_active_cap_reopens_the_build(app, client, auth):
    app.config.update(MAX_ACTIVE_BUILDS_PER_USER=2)
    letter_id = _failed_build_with_dead_letter(app, "designer@example.com", active_builds=1)

    response = client.post(f"/api/dead-letter/{letter_id}/retry", headers=auth)

    assert response.status_code == 202
    assert _letter_state(app, letter_id) == ("processing", "queued", 0, False)


@pytest.mark.slow
def test_twenty_concurrent_starts_admit_exactly_the_cap(app, client, auth, service_env, tmp_path):
    paths = [create_path(client, auth, name=f"Path {i}") for i in range(20)]
    env = {**service_env, "MAX_ACTIVE_BUILDS_PER_USER": "2", "MAX_PENDING_BUILDS_PER_USER": "3"}
    group, base = start_gunicorn(env, tmp_path / "gunicorn.log")
    try:
        with ThreadPoolExecutor(max_workers=20) as pool:
            responses = list(
                pool.map(
                    lambda p: requests.post(f"{base}/api/jobs/build/{p}", headers=auth, timeout=60), paths
                )
            )
    finally:
        group.stop()

    assert sorted(r.status_code for r in responses) == [202] * 5 + [429] * 15
    assert _build_counts(app, "designer@example.com") == {"processing": 2, "pending": 3, "steps": 5}
