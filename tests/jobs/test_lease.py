"""app/jobs/lease.py and claims.run_under_lease in-process: a running attempt keeps its lease
alive, stops renewing once its claim is lost, and is interrupted when its work is cancelled."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable

import pytest
from sqlalchemy import select, update

from app.database import utcnow
from app.extensions import db
from app.jobs import claims, lease
from app.jobs.lease import WorkCancelled, hold_lease, keep_lease
from app.models import Module
from app.models.statuses import WorkStatus
from tests.helpers import create_workflow
from tests.services import wait_until


class RecordedKind:
    """A kind of leased work whose renewals and checks are answered by plain functions, and
    recorded: what the keeper asks, and how many keys at a time."""

    def __init__(
        self,
        held: Callable[[Hashable], bool] = lambda key: True,
        wanted: Callable[[Hashable], bool] = lambda key: True,
    ) -> None:
        self.held, self.is_wanted = held, wanted
        self.renewals: list[list[Hashable]] = []
        self.checks: list[list[Hashable]] = []

    def renew(self, keys: list[Hashable]) -> tuple[set[Hashable], set[Hashable]]:
        self.renewals.append(list(keys))
        return {key for key in keys if self.held(key)}, set()

    def wanted(self, keys: list[Hashable]) -> set[Hashable]:
        self.checks.append(list(keys))
        return {key for key in keys if self.is_wanted(key)}


def test_renewal_repeats_until_renew_says_the_claim_is_lost():
    lost_after = 3
    kind = RecordedKind(held=lambda key: len(kind.renewals) < lost_after)

    with keep_lease(kind, "step-1", every_s=0.05):
        wait_until(lambda: len(kind.renewals) >= lost_after, timeout=10, message="three renewals")
        # Nothing may happen now: a fourth call would mean renewal goes on after the claim was lost.
        time.sleep(0.3)

    assert len(kind.renewals) == lost_after


def test_work_no_longer_wanted_is_interrupted_in_the_main_thread():
    assert threading.current_thread() is threading.main_thread()
    deadline = time.monotonic() + 10

    with (
        pytest.raises(WorkCancelled),
        keep_lease(RecordedKind(wanted=lambda key: False), "step-1", 0.05, watch=True),
    ):
        while time.monotonic() < deadline:  # a generator call that would run on for minutes
            time.sleep(0.01)
        pytest.fail("the cancelled work was never interrupted")


def test_many_leases_in_a_process_are_renewed_and_watched_together_by_one_thread():
    """Two hundred steps in flight: one keeper thread, one renewal and one check per round for
    them all (a thread and two queries a second per step starved the renewals), and only the
    cancelled one is interrupted."""
    count, cancelled = 200, 17
    kind = RecordedKind(wanted=lambda key: key != cancelled)
    started, release = threading.Barrier(count + 1), threading.Event()
    interrupted: list[int] = []
    threads_before = threading.active_count()

    def step(key: int) -> None:
        try:
            with keep_lease(kind, key, every_s=0.2, watch=True):
                started.wait()
                while not release.wait(0.01):
                    pass
        except WorkCancelled:
            interrupted.append(key)

    threads = [threading.Thread(target=step, args=(key,)) for key in range(count)]
    for thread in threads:
        thread.start()
    started.wait()

    def full_rounds(rounds: list[list[Hashable]]) -> int:
        return sum(1 for keys in rounds if len(keys) >= count - 1)

    # Leases registered over a moment fall due over a moment: rounds with all of them follow.
    wait_until(lambda: full_rounds(kind.renewals) >= 2, timeout=20, message="two rounds renewing them all")
    keepers = [t for t in threading.enumerate() if t.name == "lease-keeper"]
    extra_threads = threading.active_count() - threads_before - count
    release.set()
    for thread in threads:
        thread.join(timeout=10)

    assert interrupted == [cancelled]
    assert len(keepers) == 1 and extra_threads <= 1, f"{len(keepers)} keepers, {extra_threads} extra threads"
    assert full_rounds(kind.checks) >= 2, [len(keys) for keys in kind.checks]
    sizes = [len(keys) for keys in kind.renewals]
    first_full = next(i for i, size in enumerate(sizes) if size >= count - 1)
    assert all(size >= count - 1 for size in sizes[first_full:]), f"renewed together from then on: {sizes}"


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


def test_an_attempt_keeps_its_lease_from_its_claim_to_its_store(app, client, auth):
    """Renewal ran only while the generator worked: a worker slowed by its load between the
    claim and the call, or between the call and the store, let the lease lapse under live work,
    and two such lapses failed the step for good. The whole attempt is held now."""
    from app.pipelines.lesson_plans.run import MODULE

    workflow_id = create_workflow(client, auth, modules=1)
    with app.app_context():
        app.config["JOB_LEASE_TTL_S"] = 2.0  # renewed every 2/3 s
        module_id = db.session.scalar(select(Module.id).where(Module.workflow_id == workflow_id))
        db.session.execute(update(Module).where(Module.id == module_id).values(status=WorkStatus.QUEUED))
        db.session.commit()
        seen: list[object] = []

        def slow_produce(module, work):  # type: ignore[no-untyped-def]
            time.sleep(5.0)  # no generator call, no run_under_lease: two and a half leases long
            seen.append(_lease(module_id))
            seen.append(utcnow())
            return []

        MODULE.run(module_id, slow_produce)

    lease, now = seen
    assert lease is not None and lease > now, f"the lease lapsed at {lease} under live work ({now})"


def test_renewals_running_late_are_reported(caplog, monkeypatch):
    """A process too loaded for its lease says so before its live work is taken for a dead
    worker's: here each renewal takes six times the renewal period."""

    class SlowKind(RecordedKind):
        def renew(self, keys: list[Hashable]) -> tuple[set[Hashable], set[Hashable]]:
            time.sleep(0.3)
            return super().renew(keys)

    monkeypatch.setattr(lease, "LATE_WARNING_EVERY_S", 0.0)  # an earlier test may have just warned
    kind = SlowKind()
    with caplog.at_level("WARNING", logger="app.jobs.lease"), keep_lease(kind, "step-1", every_s=0.05):
        wait_until(lambda: len(kind.renewals) >= 3, timeout=10, message="three slow renewals")
    assert any("lease renewals run" in record.getMessage() for record in caplog.records), caplog.text


def test_a_claim_held_for_its_attempt_and_kept_around_its_call_is_renewed_once_a_round():
    """Every step holds its lease from claim to store and keeps it again around its call: two
    leases of one key, which the round's statement must name once, not twice."""
    kind = RecordedKind()
    with hold_lease(kind, "step-1", every_s=0.05), keep_lease(kind, "step-1", every_s=0.05):
        wait_until(lambda: len(kind.renewals) >= 4, timeout=10, message="four rounds of renewals")
    assert all(keys == ["step-1"] for keys in kind.renewals), kind.renewals
