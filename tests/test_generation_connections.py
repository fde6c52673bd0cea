"""Steps in flight hold no database connection while they wait on the model or on the rate
limiter, and a process talks to the provider over a few kept-alive connections, not one per call."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from flask import Flask
from sqlalchemy import event, func, select, text

from app.extensions import db
from app.generators.openai import shared_client
from app.models import Build, BuildStep, StepType, WorkStatus
from app.pipelines.learning_paths.steps import decompose_concept, generate_concepts
from tests.fake_llm import FakeChatServer
from tests.helpers import create_path, start_build
from tests.helpers.llm import llm_settings
from tests.services import wait_until

CONCEPTS = 6
IN_FLIGHT = 50  # steps waiting at once on the model


def _use_fake(app: Flask, fake: FakeChatServer, **extra: object) -> None:
    app.config.update(llm_settings(fake), OPENAI_TIMEOUT_S=60.0, OPENAI_COOLDOWN_S=0.2, JOB_LEASE_TTL_S=600)
    # No release window: the test runs every step itself, so all must be queued at once.
    app.config.update(JOB_RATE_LIMIT_MAX=0, JOB_RATE_LIMIT_TOKENS=0, RELEASE_WINDOW=0, **extra)


def _run_orchestrator(app: Flask, client, auth, concepts: int) -> list[int]:  # type: ignore[no-untyped-def]
    """Start a build and run its concepts step here; returns its decompose steps' ids."""
    build_id = start_build(client, auth, create_path(client, auth, concepts=concepts))
    with app.app_context():
        orchestrator = db.session.scalar(select(BuildStep.id).where(BuildStep.build_id == build_id))
        db.session.remove()
        generate_concepts(orchestrator)
        return list(
            db.session.scalars(
                select(BuildStep.id).where(
                    BuildStep.build_id == build_id, BuildStep.type == StepType.SUB_CONCEPTS
                )
            )
        )


@contextmanager
def _steps_in_threads(app: Flask, step_ids: list[int]) -> Iterator[None]:
    """Run each step in a thread of its own (as a threaded worker does), each in its app context."""

    def _run(step_id: int) -> None:
        with app.app_context():
            decompose_concept(step_id)

    threads = [threading.Thread(target=_run, args=(step_id,), daemon=True) for step_id in step_ids]
    for thread in threads:
        thread.start()
    try:
        yield
    finally:
        for thread in threads:
            thread.join(60)


def _fewest_checked_out(app: Flask, samples: int = 10) -> int:
    """The fewest connections checked out of the pool over a few samples: a step holding its
    connection holds it in every sample, while a lease check borrows one for a moment."""
    with app.app_context():
        pool = db.engine.pool
        fewest = pool.checkedout()  # type: ignore[attr-defined]
        for _ in range(samples - 1):
            threading.Event().wait(0.05)
            fewest = min(fewest, pool.checkedout())  # type: ignore[attr-defined]
    return fewest


def _fewest_postgres_sessions_in_a_transaction(app: Flask, samples: int = 10) -> int | None:
    """On PostgreSQL, the fewest sessions of this database inside a transaction (idle in one
    while a step waits), not counting the one asking; None on SQLite."""
    if not os.environ.get("TEST_DATABASE_URL"):
        return None
    counts = []
    with app.app_context(), db.engine.connect() as conn:
        for _ in range(samples):
            counts.append(
                conn.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                        "AND pid <> pg_backend_pid() AND state <> 'idle'"
                    )
                ).scalar_one()
            )
            conn.rollback()
            threading.Event().wait(0.05)
    return min(counts)


def _statuses(app: Flask, step_ids: list[int]) -> list[str]:
    with app.app_context():
        return list(db.session.scalars(select(BuildStep.status).where(BuildStep.id.in_(step_ids))))


@pytest.mark.slow
def test_steps_waiting_on_the_model_hold_no_database_connection(app, client, auth):
    gate = threading.Event()
    gate.set()  # the orchestrator is answered at once
    with FakeChatServer(gate=gate) as fake:
        _use_fake(app, fake)
        step_ids = _run_orchestrator(app, client, auth, IN_FLIGHT)
        gate.clear()
        with _steps_in_threads(app, step_ids):
            try:
                wait_until(lambda: fake.waiting == IN_FLIGHT, timeout=60, message="every step at the server")
                held = _fewest_checked_out(app)
                in_transaction = _fewest_postgres_sessions_in_a_transaction(app)
            finally:
                gate.set()

    assert held == 0, f"{held} connections held by {IN_FLIGHT} steps waiting on the model"
    assert in_transaction in (None, 0), f"{in_transaction} PostgreSQL sessions in a transaction"
    assert _statuses(app, step_ids) == [WorkStatus.COMPLETED] * IN_FLIGHT


@pytest.mark.slow
def test_steps_waiting_for_the_rate_limit_hold_no_database_connection(app, client, auth):
    with FakeChatServer() as fake:
        _use_fake(app, fake)
        step_ids = _run_orchestrator(app, client, auth, 3)
        app.config.update(JOB_RATE_LIMIT_MAX=1, JOB_RATE_LIMIT_DURATION=4000)  # the orchestrator's call
        # took this window's one slot: every step waits for the limiter
        with _steps_in_threads(app, step_ids):
            wait_until(lambda: _waiting_for_a_slot(app, step_ids) >= 2, timeout=30, message="steps waiting")
            held = _fewest_checked_out(app)
            in_transaction = _fewest_postgres_sessions_in_a_transaction(app)

    assert held == 0, f"{held} connections held by steps waiting for the rate limit"
    assert in_transaction in (None, 0), f"{in_transaction} PostgreSQL sessions in a transaction"
    assert _statuses(app, step_ids) == [WorkStatus.COMPLETED] * 3


def _waiting_for_a_slot(app: Flask, step_ids: list[int]) -> int:
    with app.app_context():
        return db.session.scalar(
            select(func.count(BuildStep.id)).where(
                BuildStep.id.in_(step_ids), BuildStep.rate_limit_next_slot_at.is_not(None)
            )
        )


@pytest.mark.slow
def test_a_build_talks_to_the_provider_over_far_fewer_connections_than_calls(app, client, auth):
    with FakeChatServer() as fake:
        _use_fake(app, fake)
        step_ids = _run_orchestrator(app, client, auth, CONCEPTS)
        for step_id in step_ids:  # one after another, as one worker thread runs them
            with app.app_context():
                decompose_concept(step_id)

    assert len(fake.answered()) == 1 + CONCEPTS
    assert fake.connections == 1, f"{fake.connections} connections for {len(fake.answered())} calls"


@pytest.mark.slow
def test_a_forked_process_makes_its_own_provider_client():
    parent = shared_client("http://127.0.0.1:9/v1", "sk-test", 1.0)
    assert shared_client("http://127.0.0.1:9/v1", "sk-test", 1.0) is parent  # one per process
    child = os.fork()
    if child == 0:  # the child: its client must not be the parent's (their sockets would mix)
        os._exit(0 if id(shared_client("http://127.0.0.1:9/v1", "sk-test", 1.0)) != id(parent) else 1)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the child reused the parent's client"


@pytest.mark.parametrize(
    ("limit", "policy", "reads_owner"),
    [(0, "fair", False), (10, "fifo", False), (10, "fair", True)],
)
def test_a_call_reads_its_owner_only_when_the_limit_takes_turns_by_owner(
    app, client, auth, limit, policy, reads_owner
):
    """The owner (one query per call) matters only to the fair turns of a request limit."""
    app.config.update(JOB_RATE_LIMIT_MAX=limit, JOB_RATE_LIMIT_DURATION=1000, RELEASE_POLICY=policy)
    build_id = start_build(client, auth, create_path(client, auth, concepts=1))
    statements: list[str] = []
    with app.app_context():
        orchestrator = db.session.scalar(select(BuildStep.id).where(BuildStep.build_id == build_id))
        db.session.remove()

        def _record(_conn, _cursor, statement, *_):  # type: ignore[no-untyped-def]
            statements.append(statement)

        event.listen(db.engine, "before_cursor_execute", _record)
        try:
            generate_concepts(orchestrator)
        finally:
            event.remove(db.engine, "before_cursor_execute", _record)
    owner_reads = [s for s in statements if s.startswith(f"SELECT {Build.__tablename__}.triggered_by \n")]
    assert bool(owner_reads) is reads_owner, owner_reads
