"""The life of one unit of work, written once for every pipeline: claim its row under a lease,
generate, store (fenced by the claim) or record the failure, then chain what comes next.

A pipeline supplies its specifics as a `StepLifecycle` (which table, how to name a row in logs,
what to do with a row it could not claim, how to record a failure, what follows a success)
and runs each job through it: a new pipeline is its `produce` functions and one of these."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, cast

from sqlalchemy import ColumnElement

from app.extensions import db
from app.jobs import claims
from app.jobs.lease import WorkCancelled, WorkerShuttingDown
from app.logs import add_to_context
from app.models.tracking import TrackedWork

log = logging.getLogger(__name__)
Row = TypeVar("Row", bound=TrackedWork)
Result = TypeVar("Result")


@dataclass(frozen=True)
class StepLifecycle(Generic[Row, Result]):
    """Args:
    model: the table whose row is claimed (a BuildStep, a Module).
    missing: what the job returns when the row is gone.
    label: how logs name a row ("build X step 3").
    log_context: fields every log line of the attempt carries.
    not_claimed: what to do, and return, when the row could not be claimed.
    record_failure: write a failed attempt (before RQ sees the exception).
    finish: after `produce` returned (having stored its work, or handing back what to store
        under the claim): chain what comes next; returns what the job returns.
    claim_conditions: extra conditions the claim requires (e.g. the build is processing).
    stopped: after a cancel stopped the attempt (e.g. give its place in a window to the next).
    announce: log the start of each attempt.
    """

    model: type[Row]
    missing: str
    label: Callable[[Row], str]
    log_context: Callable[[Row], dict[str, Any]]
    not_claimed: Callable[[Row], str]
    record_failure: Callable[[claims.Claim, Row, Exception], None]
    finish: Callable[[Row, claims.Claim, Result], str]
    claim_conditions: Callable[[], tuple[ColumnElement[bool], ...]] = field(default=lambda: ())
    stopped: Callable[[Row], None] = field(default=lambda row: None)
    announce: bool = False

    def run(self, row_id: int, produce: Callable[[Row, claims.Claim], Result]) -> str:
        """Claim the row, let `produce` generate (and store, fenced by the claim), then finish."""
        work = claims.claim(self.model, row_id, *self.claim_conditions())
        if work is None:  # a duplicate delivery, a stale job, a row its owner stopped, or none
            unclaimed = db.session.get(self.model, row_id)
            return self.missing if unclaimed is None else self.not_claimed(unclaimed)
        row = cast(Row, work.row)
        label = self.label(row)
        add_to_context(**self.log_context(row))
        if self.announce:
            log.info("%s: attempt %s started", label, row.attempts)
        with claims.holding(work):  # renewed from the claim to the store, however slow the way
            try:
                result = produce(row, work)
            except WorkCancelled:
                log.info("%s: stopped by cancel", label)
                self.stopped(row)
                return "cancelled"
            except WorkerShuttingDown:
                claims.release(work)
                log.info("%s: put back, the worker is shutting down", label)
                return "put back"
            except Exception as exc:
                self.record_failure(work, row, exc)
                raise
            return self.finish(row, work, result)
