"""app/jobs/claims.py in-process against real Redis and SQLite: one attempt holds a row at a
time, and an attempt whose lease lapsed (its worker presumed dead) can change nothing."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import event, select, update

from app.database import utcnow
from app.extensions import db
from app.jobs import claims
from app.jobs.leased_rows import LeasedRows
from app.models import Module
from app.models.statuses import WorkStatus
from tests.helpers import create_workflow


@pytest.fixture
def module_id(app, client, auth) -> int:  # type: ignore[no-untyped-def]
    """A queued module, as the run's start leaves it (without a worker to take it)."""
    workflow_id = create_workflow(client, auth, modules=1)
    with app.app_context():
        module_id = db.session.scalar(select(Module.id).where(Module.workflow_id == workflow_id))
        db.session.execute(update(Module).where(Module.id == module_id).values(status=WorkStatus.QUEUED))
        db.session.commit()
    return module_id


def _lapse(module_id: int) -> None:
    """What a dead worker leaves: a running row whose lease nobody renewed."""
    db.session.execute(
        update(Module).where(Module.id == module_id).values(lease_expires_at=utcnow() - timedelta(seconds=1))
    )
    db.session.commit()


def _row(module_id: int) -> Module:
    db.session.expire_all()
    return db.session.get(Module, module_id)


def test_a_row_held_under_a_live_lease_cannot_be_claimed_again(app, module_id):
    with app.app_context():
        first = claims.claim(Module, module_id)

        assert first is not None and claims.claim(Module, module_id) is None
        row = _row(module_id)
        assert (row.status, row.attempts, row.claim_token) == (WorkStatus.RUNNING, 1, first.token)


def _statements_run(action: Callable[[], object]) -> list[str]:
    """The first word of each SQL statement `action` sent the database."""
    statements: list[str] = []

    def record(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        statements.append(statement.split()[0])

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        action()
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    return statements


def test_a_claim_is_one_update_that_carries_its_row_as_claimed(app, module_id):
    with app.app_context():
        claimed: list[claims.Claim | None] = []

        statements = _statements_run(lambda: claimed.append(claims.claim(Module, module_id)))
        work = claimed[0]
        seen = _statements_run(lambda: (work.row.status, work.row.attempts, work.row.claim_token))

        assert statements == ["UPDATE"] and seen == []  # no SELECT of the row, then or later
        assert (work.row.status, work.row.attempts, work.row.claim_token) == (
            WorkStatus.RUNNING,
            1,
            work.token,
        )
        assert db.session.get(Module, module_id) is work.row


def test_a_claim_gives_its_values_to_a_copy_of_the_row_loaded_before_it(app, module_id):
    with app.app_context():
        loaded = _row(module_id)

        work = claims.claim(Module, module_id)

        assert work.row is loaded and (loaded.status, loaded.claim_token) == (WorkStatus.RUNNING, work.token)


def test_a_lapsed_lease_is_claimed_by_a_new_attempt(app, module_id):
    with app.app_context():
        stale = claims.claim(Module, module_id)
        _lapse(module_id)

        fresh = claims.claim(Module, module_id)

        assert fresh is not None and fresh.token != stale.token
        assert _row(module_id).attempts == 2


def test_a_stale_claims_completion_failure_and_release_are_refused(app, module_id):
    # Without the token in every WHERE, the dead worker's late writes would overwrite the new attempt.
    with app.app_context():
        stale = claims.claim(Module, module_id)
        _lapse(module_id)
        fresh = claims.claim(Module, module_id)

        assert not claims.mark_completed(stale)
        db.session.commit()
        assert not claims.record_failure(stale, RuntimeError("late"), final=True)
        db.session.commit()
        assert not claims.release(stale)

        row = _row(module_id)
        assert (row.status, row.claim_token, row.error) == (WorkStatus.RUNNING, fresh.token, None)
        assert claims.mark_completed(fresh)
        db.session.commit()
        assert _row(module_id).status == WorkStatus.COMPLETED


def test_a_completed_row_is_not_claimed_again(app, module_id):
    # A duplicate delivery of a finished job must not run the work twice.
    with app.app_context():
        work = claims.claim(Module, module_id)
        claims.mark_completed(work)
        db.session.commit()

        assert claims.claim(Module, module_id) is None


def test_a_failed_attempt_that_rq_will_retry_is_claimable_and_keeps_its_error(app, module_id):
    with app.app_context():
        work = claims.claim(Module, module_id)
        assert claims.record_failure(work, RuntimeError("provider hiccup"), final=False)
        db.session.commit()

        row = _row(module_id)
        assert (row.status, row.failed_attempts, row.error) == (
            WorkStatus.RETRYING,
            1,
            "RuntimeError: provider hiccup",
        )
        assert claims.claim(Module, module_id) is not None


def test_a_lost_workers_row_is_requeued_then_given_up_after_the_allowed_losses(app, module_id):
    with app.app_context():
        claims.claim(Module, module_id)
        _lapse(module_id)
        assert claims.release_lost(Module, _row(module_id), max_losses=2) == (True, False)
        assert _row(module_id).status == WorkStatus.QUEUED

        claims.claim(Module, module_id)
        _lapse(module_id)
        row = _row(module_id)
        assert claims.release_lost(Module, row, max_losses=2) == (True, True)
        assert (_row(module_id).status, _row(module_id).error_category) == (WorkStatus.FAILED, "worker_lost")


def test_two_sweeps_releasing_the_same_lost_row_count_one_loss(app, module_id):
    # Both sweeps read the row before either wrote: the second must see its claim is gone.
    with app.app_context():
        claims.claim(Module, module_id)
        _lapse(module_id)
        row = _row(module_id)
        second_sweeps_read = Module(id=row.id, claim_token=row.claim_token, worker_losses=row.worker_losses)

        assert claims.release_lost(Module, row, max_losses=5)[0]
        assert not claims.release_lost(Module, second_sweeps_read, max_losses=5)[0]
        assert _row(module_id).worker_losses == 1


def test_a_sweep_does_not_release_a_row_whose_lease_was_renewed_after_it_read_it(app, module_id):
    # A sweep over thousands of rows reads them all, then judges each: by the time it gets to
    # this one, the live worker may have renewed the lease its read says has lapsed. Releasing
    # it then counted a loss against live work, and two such losses failed the step for good.
    with app.app_context():
        work = claims.claim(Module, module_id)
        _lapse(module_id)
        sweeps_read = _row(module_id)
        db.session.expunge(sweeps_read)
        db.session.execute(
            update(Module).where(work.held).values(lease_expires_at=utcnow() + timedelta(seconds=30))
        )
        db.session.commit()

        assert claims.release_lost(Module, sweeps_read, max_losses=1) == (False, True)
        row = _row(module_id)
        assert (row.status, row.worker_losses, row.claim_token) == (WorkStatus.RUNNING, 0, work.token)


def test_a_renewal_skips_a_row_another_transaction_holds_and_keeps_it_for_the_next_round(app, client, auth):
    """Renewing all of a process's leases in one statement must not wait for a row another
    transaction holds (on PostgreSQL, a store locking its step, then the parent and the build):
    waiting there while holding the other rows' locks deadlocked. The held row is skipped and
    reported busy, still held, and the other leases are renewed at once."""
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        pytest.skip("SQLite locks the whole database: a renewal waits its turn, no deadlock is possible")
    workflow_id = create_workflow(client, auth, modules=2)
    with app.app_context():
        ids = db.session.scalars(
            select(Module.id).where(Module.workflow_id == workflow_id).order_by(Module.id)
        ).all()
        db.session.execute(update(Module).where(Module.id.in_(ids)).values(status=WorkStatus.QUEUED))
        db.session.commit()
        held, free = (claims.claim(Module, module_id) for module_id in ids)
        kind = LeasedRows(db.engine, Module, timedelta(seconds=30))
        before = {module_id: _row(module_id).lease_expires_at for module_id in ids}
        with db.engine.connect() as locker:
            locker.begin()
            locker.execute(select(Module.id).where(Module.id == held.row_id).with_for_update())
            answer: list[tuple[set[object], set[object]]] = []
            renewal = threading.Thread(
                target=lambda: answer.append(
                    kind.renew([(held.row_id, held.token), (free.row_id, free.token)])
                )
            )
            renewal.start()
            renewal.join(timeout=5)
            locker.rollback()  # lets a renewal that waited for the lock go on
            renewal.join(timeout=10)
        assert answer, "the renewal was still waiting for the locked row after 5 s"
        renewed, busy = answer[0]
        assert renewed == {(free.row_id, free.token)} and busy == {(held.row_id, held.token)}
        assert _row(free.row_id).lease_expires_at > before[free.row_id]
        assert _row(held.row_id).lease_expires_at == before[held.row_id]
