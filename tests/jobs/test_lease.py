"""app/jobs/lease.py and claims.run_under_lease in-process: a running attempt keeps its lease
alive, stops renewing once its claim is lost, and is interrupted when its work is cancelled."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import select, update

from app.database import utcnow
from app.extensions import db
from app.jobs import claims
from app.jobs.lease import WorkCancelled, keep_lease
from app.models import Module
from app.models.statuses import WorkStatus
from tests.helpers import create_workflow
from tests.services import wait_until


def test_renewal_repeats_until_renew_says_the_claim_is_lost():
    calls: list[float] = []
    lost_after = 3

    def renew() -> bool:
        calls.append(time.monotonic())
        return len(calls) < lost_after

    with keep_lease(renew, every_s=0.05):
        wait_until(lambda: len(calls) >= lost_after, timeout=10, message="three renewals")
        # Nothing may happen now: a fourth call would mean renewal goes on after the claim was lost.
        time.sleep(0.3)

    assert len(calls) == lost_after


def test_work_no_longer_wanted_is_interrupted_in_the_main_thread():
    assert threading.current_thread() is threading.main_thread()
    deadline = time.monotonic() + 10

    with pytest.raises(WorkCancelled), keep_lease(lambda: True, every_s=0.05, still_wanted=lambda: False):
        while time.monotonic() < deadline:  # a generator call that would run on for minutes
            time.sleep(0.01)
        pytest.fail("the cancelled work was never interrupted")


def test_a_lease_is_renewed_while_the_work_runs(app, client, auth):
    # Without renewal a step longer than JOB_LEASE_TTL_S would look like a dead worker's.
    workflow_id = create_workflow(client, auth, modules=1)
    with app.app_context():
        app.config["JOB_LEASE_TTL_S"] = 1.5  # renewed every 0.5 s
        module_id = db.session.scalar(select(Module.id).where(Module.workflow_id == workflow_id))
        db.session.execute(update(Module).where(Module.id == module_id).values(status=WorkStatus.QUEUED))
        db.session.commit()
        work = claims.claim(Module, module_id)
        first_lease = _lease(module_id)

        def long_call(progress) -> bool:  # type: ignore[no-untyped-def]
            wait_until(lambda: _lease(module_id) > first_lease, timeout=10, message="a renewed lease")
            return True

        assert claims.run_under_lease(work, long_call)
        assert _lease(module_id) > utcnow(), "the lease still runs after the renewals"


def _lease(module_id: int):  # type: ignore[no-untyped-def]
    db.session.expire_all()
    return db.session.scalar(select(Module.lease_expires_at).where(Module.id == module_id))
