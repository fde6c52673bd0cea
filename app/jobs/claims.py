"""Claims on tracked work: one attempt at a time holds a row, under a lease, fenced by a token.

Every write an attempt makes is conditioned on its token, so an attempt whose lease lapsed
(its worker was presumed dead and the work handed to another) can no longer change anything.
"""

from __future__ import annotations

import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from flask import current_app
from rq import get_current_job
from rq.timeouts import JobTimeoutException
from sqlalchemy import ColumnElement, update

from app.database import commit_keeping_loaded, execute_dml, utcnow
from app.extensions import db
from app.failure_kinds import CategorizedFailure
from app.jobs.lease import hold_lease, keep_lease
from app.jobs.leased_rows import LeasedRows, lease_engine
from app.models.statuses import WorkStatus
from app.models.tracking import TrackedWork

T = TypeVar("T")
CLAIMABLE = (WorkStatus.QUEUED, WorkStatus.RETRYING)
PROGRESS_EVERY_S = 0.5


@dataclass(frozen=True)
class Claim:
    model: type[TrackedWork]
    row_id: Any
    token: str
    started_at: datetime
    row: TrackedWork = field(compare=False, repr=False)  # as claimed; held, so the session keeps it

    @property
    def held(self) -> ColumnElement[bool]:
        """The condition every write of this attempt carries."""
        held: ColumnElement[bool] = (self.model.id == self.row_id) & (self.model.claim_token == self.token)
        return held


def lease_ttl() -> timedelta:
    return timedelta(seconds=current_app.config["JOB_LEASE_TTL_S"])


def claim(model: type[TrackedWork], row_id: Any, *conditions: ColumnElement[bool]) -> Claim | None:
    """Take the row for a new attempt (commits); None if it is done or a live attempt holds it.

    A running row whose lease lapsed is claimable: its worker is gone. The claim carries the
    row as the UPDATE returned it (`RETURNING`), loaded in the session: no second SELECT.
    """
    token, now = uuid.uuid4().hex, utcnow()
    claimable = model.status.in_(CLAIMABLE) | (
        (model.status == WorkStatus.RUNNING) & (model.lease_expires_at < now)
    )
    claimed = db.session.scalars(
        update(model)
        .where(model.id == row_id, claimable, *conditions)
        .values(
            status=WorkStatus.RUNNING,
            claim_token=token,
            attempts=model.attempts + 1,
            progress=0,
            started_at=now,
            completed_at=None,
            lease_expires_at=now + lease_ttl(),
            rate_limit_next_slot_at=None,  # durations and waits are the new attempt's own
            rate_limit_waited_ms=0,
        )
        .returning(model)
        # The returned row becomes the session's copy, even over one loaded before.
        .execution_options(synchronize_session=False, populate_existing=True)
    ).one_or_none()
    commit_keeping_loaded()
    return Claim(model, row_id, token, now, claimed) if claimed is not None else None


def run_under_lease(work: Claim, fn: Callable[[Callable[[int], None]], T], watch_cancel: bool = False) -> T:
    """Run `fn(progress)` while the process's lease keeper renews the lease (with
    `watch_cancel`, interrupting `fn` with WorkCancelled once the row stops running under the
    claim: a cancelled build); progress(0..100) is stored too, at most every PROGRESS_EVERY_S
    (a fast generator reports far more often than anyone looks)."""
    engine, ttl, model = db.engine, lease_ttl(), work.model
    last_progress_write = [time.monotonic()]  # the claim wrote progress 0 just now

    def report(percent: int) -> None:
        now = time.monotonic()
        if now - last_progress_write[0] >= PROGRESS_EVERY_S:
            last_progress_write[0] = now
            with engine.begin() as conn:
                conn.execute(
                    update(model)
                    .where(work.held)
                    .values(lease_expires_at=utcnow() + ttl, progress=min(percent, 99))
                )

    with keep_lease(
        _leased_rows(work), (work.row_id, work.token), ttl.total_seconds() / 3, watch=watch_cancel
    ):
        return fn(report)


@contextmanager
def holding(work: Claim) -> Iterator[None]:
    """Keep the claim's lease renewed while the block runs (the whole attempt: claim to store)."""
    with hold_lease(_leased_rows(work), (work.row_id, work.token), lease_ttl().total_seconds() / 3):
        yield


def _leased_rows(work: Claim) -> LeasedRows:
    """The lease keeper's kind for this claim's table (equal for every claim on it: one statement)."""
    return LeasedRows(lease_engine(), work.model, lease_ttl())


def elapsed_ms(work: Claim) -> int:
    return int((utcnow() - work.started_at).total_seconds() * 1000)


def completed_values(work: Claim) -> dict[str, Any]:
    now = utcnow()
    return {
        "status": WorkStatus.COMPLETED,
        "progress": 100,
        "completed_at": now,
        "duration_ms": int((now - work.started_at).total_seconds() * 1000),
        "lease_expires_at": None,
        # error, error_category and traceback stay: the last failed attempt, if any, remains visible
    }


def mark_completed(work: Claim, **extra: Any) -> bool:
    """In the caller's transaction: mark the row completed if the claim still holds."""
    model = work.model
    return (
        execute_dml(
            update(model)
            .where(work.held, model.status == WorkStatus.RUNNING)
            .values({**completed_values(work), **extra})
        ).rowcount
        == 1
    )


def failure_category(exc: BaseException) -> str:
    if isinstance(exc, JobTimeoutException):
        return "timeout"
    if isinstance(exc, CategorizedFailure):
        return exc.category
    return "error"


def is_final_attempt(exc: BaseException) -> bool:
    """True when RQ will not try again: retries used up, or an error no retry can fix."""
    rq_job = get_current_job()
    permanent = isinstance(exc, CategorizedFailure) and not exc.transient
    if permanent and rq_job is not None:
        rq_job.retries_left = 0  # RQ reads this very object when it decides on a retry
    return permanent or rq_job is None or not rq_job.should_retry


def record_failure(work: Claim, exc: BaseException, final: bool) -> bool:
    """In a fresh transaction (not committed): the attempt's error, traceback and category."""
    db.session.rollback()
    model = work.model
    return (
        execute_dml(
            update(model)
            .where(work.held)
            .values(
                status=WorkStatus.FAILED if final else WorkStatus.RETRYING,
                failed_attempts=model.failed_attempts + 1,
                error=f"{type(exc).__name__}: {exc}",
                error_category=failure_category(exc),
                traceback="".join(traceback.format_exception(exc)),
                lease_expires_at=None,
                completed_at=utcnow() if final else None,
            )
        ).rowcount
        == 1
    )


def release(work: Claim) -> bool:
    """Give the row back as queued (commits): the worker is leaving, the work is not failed.
    The recovery sweep enqueues it again, within JOB_RECOVERY_INTERVAL_S."""
    db.session.rollback()
    released = execute_dml(
        update(work.model)
        .where(work.held, work.model.status == WorkStatus.RUNNING)
        .values(
            status=WorkStatus.QUEUED, claim_token=None, lease_expires_at=None, progress=0, queued_at=utcnow()
        )
    ).rowcount
    db.session.commit()
    return released == 1


def release_lost(model: type[TrackedWork], row: TrackedWork, max_losses: int) -> tuple[bool, bool]:
    """The row's worker stopped renewing its lease: put it back, or fail it as worker_lost.

    Commits. Returns (taken, given_up); `taken` is False when another sweep got there first, or
    when the lease was renewed since `row` was read: the lapse is judged again by the database
    (a sweep over thousands of rows reads them seconds before it gets to this one)."""
    losses = row.worker_losses + 1
    give_up = losses >= max_losses
    values: dict[str, object] = {"worker_losses": losses, "claim_token": None, "lease_expires_at": None}
    if give_up:
        values |= {
            "status": WorkStatus.FAILED,
            "error": f"worker lost {losses} times while running this step",
            "error_category": "worker_lost",
            "completed_at": utcnow(),
        }
    else:
        values |= {"status": WorkStatus.QUEUED, "queued_at": utcnow()}
    taken = execute_dml(
        update(model)
        .where(
            model.id == row.id,
            model.status == WorkStatus.RUNNING,
            model.claim_token == row.claim_token,
            model.lease_expires_at < utcnow(),
        )
        .values(**values)
    ).rowcount
    db.session.commit()
    return bool(taken), give_up
