"""Lesson-plan runs share the workers fairly: with each other (two users' runs take turns) and
with builds (a big build does not hold a run back). Real redis-server, real worker processes
(`python worker.py`), a real SQLite file, the offline generator with a latency per call."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app.extensions import db
from app.models import Build, Module, WorkStatus
from tests.helpers import build_of, create_path, create_workflow, start_build, wait_for_status
from tests.helpers.users import make_user
from tests.services import ProcessGroup, wait_until

pytestmark = pytest.mark.slow


def _start_run(client: FlaskClient, auth: dict[str, str], workflow_id: str) -> None:
    started = client.post(f"/api/v3/workflow/{workflow_id}/step10", headers=auth)
    assert started.status_code == 202, started.get_json()


def _completion_order(app: Flask, owners: dict[str, str]) -> list[str]:
    """Whose module completed, in the order the database recorded them (owners: workflow id ->
    a name for its owner)."""
    with app.app_context():
        modules = db.session.scalars(
            select(Module)
            .where(Module.workflow_id.in_(owners), Module.status == WorkStatus.COMPLETED)
            .order_by(Module.completed_at)
        ).all()
        db.session.remove()
        return [owners[module.workflow_id] for module in modules]


def test_two_users_runs_take_turns_so_the_small_one_does_not_wait_for_the_big_one(
    app: Flask, client: FlaskClient, auth: dict[str, str], workers: Callable[..., ProcessGroup]
) -> None:
    """A's 6-module run starts first, then B's 2-module run; only then do workers start, so both
    first modules are queued before any runs. Each run holds one job in the `lesson-plans` queue
    and queues its next module when one ends, behind the other run's: modules complete A, B, A,
    B, then A's last four. Fails if a run enqueued all its modules at once (A's six would all
    complete before B's first: A A A A A A B B), or if a run's next module jumped the queue
    (tried by hand: enqueueing module jobs at the front gave B B A A A A A A)."""
    other = make_user(app, "other@example.com")
    big = create_workflow(client, auth, modules=6, hours=1)
    small = create_workflow(client, other, modules=2, hours=1)
    _start_run(client, auth, big)
    _start_run(client, other, small)

    workers(GENERATOR_LATENCY_MS="50")
    wait_for_status(client, other, small, "complete", timeout=120)
    wait_for_status(client, auth, big, "complete", timeout=120)

    order = _completion_order(app, {big: "A", small: "B"})
    assert order == ["A", "B", "A", "B", "A", "A", "A", "A"], order
    with app.app_context():
        last_of_b = db.session.scalar(
            select(Module.completed_at).where(Module.workflow_id == small, Module.position == 1)
        )
        last_of_a = db.session.scalar(
            select(Module.completed_at).where(Module.workflow_id == big, Module.position == 5)
        )
    assert last_of_b is not None and last_of_a is not None and last_of_b < last_of_a


def test_a_run_completes_while_another_users_big_build_is_still_processing(
    app: Flask, client: FlaskClient, auth: dict[str, str], workers: Callable[..., ProcessGroup]
) -> None:
    """User A's 40-concept build (over a hundred generator calls) is fanning out when user B
    starts a 2-module run (two calls): B's run finishes while A's build is still processing and
    less than half done (it finished at about 28% here). Fails if lesson-plan jobs waited behind
    the build's steps: tried by hand, serving `lesson-plans` only from the build's threads after
    their own queues, B finished at 62%; putting module jobs on `generate-ku` with
    RELEASE_WINDOW=0 (every step enqueued at once), at 70%."""
    big = start_build(client, auth, create_path(client, auth, concepts=40))
    workers(GENERATOR_LATENCY_MS="50")
    wait_until(
        lambda: build_of(client, auth, big)["completedConcepts"] >= 4,
        timeout=60,
        message="the big build to be fanning out",
    )
    other = make_user(app, "other@example.com")
    small = create_workflow(client, other, modules=2, hours=1)
    _start_run(client, other, small)

    wait_for_status(client, other, small, "complete", timeout=120)
    build = build_of(client, auth, big)
    assert build["status"] == "processing", f"the run waited for the build: {build}"
    assert build["progressPercent"] < 50, f"the run waited behind most of the build: {build}"
    with app.app_context():
        assert db.session.get(Build, big).status == "processing"
    assert _completion_order(app, {small: "B"}) == ["B", "B"]
