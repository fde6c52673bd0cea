"""Leases: a running step renews one; a lease that lapses means the step's worker is gone.

One thread per process (the lease keeper) renews them all, a statement per kind of work. It
also watches whether the work is still wanted (a cancelled build) and, when it is not,
interrupts the job's own thread with WorkCancelled, the way RQ's own job timeout interrupts
it. A worker process runs many jobs at once, one per thread, so an interrupt names its
thread: the main thread gets a signal (which also cuts short a blocking sleep or read), any
other thread an asynchronous exception (raised at its next bytecode) and a wake-up of its
interruptible sleeps (`interruptible_sleep`).
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import threading
import time
from collections.abc import Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol

log = logging.getLogger(__name__)

CHECK_EVERY_S = 0.5
LATE_WARNING_EVERY_S = 30.0


class WorkCancelled(Exception):
    """The work was cancelled while it ran."""


class WorkerShuttingDown(Exception):
    """The worker must exit before this work could finish: it goes back to the queue."""


_MESSAGES: dict[type[BaseException], str] = {
    WorkCancelled: "cancelled while running",
    WorkerShuttingDown: "the worker is shutting down",
}


@dataclass
class _LeasedThread:
    """A thread running leased work, and the interrupt waiting for it (if any)."""

    ident: int
    wake: threading.Event = field(default_factory=threading.Event)
    pending: type[BaseException] | None = None
    active: bool = True
    waiting: bool = False  # only waiting for a rate-limit slot: nothing done worth finishing
    lock: threading.Lock = field(default_factory=threading.Lock)


_leased: dict[int, _LeasedThread] = {}
_leased_lock = threading.Lock()
_shutting_down = threading.Event()


def _raise_pending(_signum: int, _frame: object) -> None:
    """SIGUSR1 in the main thread: raise the interrupt meant for it, if it still runs leased work."""
    leased = _leased.get(threading.get_ident())
    if leased is not None and leased.active and leased.pending is not None:
        raise leased.pending(_MESSAGES.get(leased.pending, ""))


def _interrupt(leased: _LeasedThread, exc_class: type[BaseException]) -> bool:
    """Raise `exc_class` in the leased thread, unless its leased work has already ended."""
    with leased.lock:
        if not leased.active or leased.pending is not None:
            return False
        leased.pending = exc_class
        leased.wake.set()
        if leased.ident == threading.main_thread().ident:
            signal.pthread_kill(leased.ident, signal.SIGUSR1)
        else:
            ctypes.pythonapi.PyThreadState_SetAsyncExc(
                ctypes.c_ulong(leased.ident), ctypes.py_object(exc_class)
            )
        return True


def interrupt_for_shutdown() -> bool:
    """Stop every leased work of this process (at the end of the shutdown grace period), so it
    is put back. Returns False when no leased work is running (nothing to interrupt)."""
    with _leased_lock:
        running = list(_leased.values())
    return sum(_interrupt(leased, WorkerShuttingDown) for leased in running) > 0


def interrupt_waiting_for_shutdown() -> int:
    """The worker is stopping: put back at once the work that only waits for a rate-limit slot
    (it has done nothing worth the grace period), and any that starts waiting from now on."""
    _shutting_down.set()
    with _leased_lock:
        waiting = [leased for leased in _leased.values() if leased.waiting]
    return sum(_interrupt(leased, WorkerShuttingDown) for leased in waiting)


@contextmanager
def waiting_for_slot() -> Iterator[None]:
    """Mark the calling thread's leased work as only waiting (for a rate-limit slot) meanwhile."""
    leased = _leased.get(threading.get_ident())
    if leased is None:
        yield
        return
    with leased.lock:
        leased.waiting = True
    try:
        if _shutting_down.is_set():
            raise WorkerShuttingDown(_MESSAGES[WorkerShuttingDown])
        yield
    finally:
        with leased.lock:
            leased.waiting = False


def leased_work_count() -> int:
    """How many threads of this process run leased work now."""
    return len(_leased)


def interruptible_sleep(seconds: float) -> None:
    """Sleep, but wake at once when this thread's leased work is interrupted (the interrupt then
    raises); outside leased work, a plain sleep."""
    leased = _leased.get(threading.get_ident())
    if leased is None:
        time.sleep(seconds)
    elif leased.wake.wait(seconds):
        time.sleep(CHECK_EVERY_S)  # the pending interrupt is raised here, between bytecodes


def _install_interrupt_handler() -> None:
    if threading.current_thread() is threading.main_thread():
        if signal.getsignal(signal.SIGUSR1) is not _raise_pending:
            signal.signal(signal.SIGUSR1, _raise_pending)


@contextmanager
def _leased_thread() -> Iterator[_LeasedThread]:
    """Register the calling thread as running leased work; on the way out no interrupt can
    land any more, and one that was set but not yet raised is withdrawn."""
    _install_interrupt_handler()
    leased = _LeasedThread(threading.get_ident())
    with _leased_lock:
        _leased[leased.ident] = leased
    try:
        yield leased
    finally:
        try:
            with leased.lock:
                leased.active = False
                if leased.pending is not None and leased.ident != threading.main_thread().ident:
                    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(leased.ident), None)
        finally:  # even if the interrupt lands just above, the record goes: none can follow it
            with _leased_lock:
                _leased.pop(leased.ident, None)


class LeaseKind(Protocol):
    """One kind of leased work (one table's rows): many leases renewed, and watched, in one go."""

    def renew(self, keys: list[Hashable]) -> tuple[set[Hashable], set[Hashable]]:
        """Renew the leases of `keys`; returns those renewed, and those still held but not
        renewed this time (busy: tried again next round). The others' claims were lost."""

    def wanted(self, keys: list[Hashable]) -> set[Hashable]:
        """Of `keys`, those whose work is still wanted (not cancelled)."""


@dataclass(eq=False)
class _Lease:
    kind: LeaseKind
    key: Hashable
    every_s: float
    watch: bool  # interrupt the work with WorkCancelled once it is no longer wanted
    leased: _LeasedThread | None  # the thread to interrupt (None: renewal only)
    next_renewal: float
    held: bool = True


class _LeaseKeeper:
    """The one thread of a process that renews every lease held in it and watches for cancels:
    a statement per kind of work each round, whatever the number of leases. A thread and two
    queries a second per lease was what a process with hundreds of steps in flight could not
    afford: renewals queued behind the checks for a database connection until leases lapsed
    under live work."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.leases: set[_Lease] = set()
        self.changed = threading.Event()
        self.thread: threading.Thread | None = None
        self.warned_at = -LATE_WARNING_EVERY_S

    def add(self, lease: _Lease) -> None:
        with self.lock:
            self.leases.add(lease)
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._run, name="lease-keeper", daemon=True)
                self.thread.start()
        self.changed.set()

    def remove(self, lease: _Lease) -> None:
        with self.lock:
            self.leases.discard(lease)

    def reset_after_fork(self) -> None:
        """A forked child inherits the leases' records but not the thread: it holds none of them."""
        self.lock = threading.Lock()
        self.leases = set()
        self.changed = threading.Event()
        self.thread = None

    def _run(self) -> None:
        while True:
            with self.lock:
                leases = list(self.leases)
            if not leases:
                self.changed.wait()
                self.changed.clear()
                continue
            time.sleep(min(CHECK_EVERY_S, *(lease.every_s for lease in leases)))
            with self.lock:
                leases = [lease for lease in self.leases if lease.held]
            self._watch([lease for lease in leases if lease.watch])
            self._renew(leases)

    def _watch(self, leases: list[_Lease]) -> None:
        for kind, group in _by_kind(leases).items():
            try:
                wanted = kind.wanted([lease.key for lease in group])
            except Exception:  # a database blip: look again next round
                log.warning("checking whether leased work is still wanted failed", exc_info=True)
                continue
            for lease in group:
                if lease.key not in wanted and lease.leased is not None:
                    lease.watch = lease.held = False
                    _interrupt(lease.leased, WorkCancelled)

    def _renew(self, leases: list[_Lease]) -> None:
        now = time.monotonic()
        due = [lease for lease in leases if lease.held and now >= lease.next_renewal]
        self._warn_if_late(due, now)
        for kind, group in _by_kind(due).items():
            try:
                # A claim held for its whole attempt and kept around its call is two leases of
                # one key: the statement names it once.
                renewed, busy = kind.renew(list(dict.fromkeys(lease.key for lease in group)))
            except Exception:  # a database blip: try again next round, the lease has slack
                log.warning("lease renewal failed", exc_info=True)
                continue
            for lease in group:
                if lease.key in renewed:
                    lease.next_renewal = now + lease.every_s
                elif lease.key not in busy:  # the claim was lost: renewing stops
                    lease.held = lease.watch = False

    def _warn_if_late(self, due: list[_Lease], now: float) -> None:
        """Say so (at most every LATE_WARNING_EVERY_S) when renewals run a third of a lease late:
        the process is too loaded for its lease, and at a whole lease late its live work is
        taken for a dead worker's and run again."""
        late = max((now - lease.next_renewal - lease.every_s for lease in due), default=0.0)
        if late > 0 and now - self.warned_at >= LATE_WARNING_EVERY_S:
            self.warned_at = now
            log.warning(
                "lease renewals run %.1f s late in this process (%d leases): it is overloaded for "
                "JOB_LEASE_TTL_S; lower its JOB_CONCURRENCY_*, add WORKER_PROCESSES, or raise the lease",
                late + due[0].every_s,
                len(self.leases),
            )


def _by_kind(leases: list[_Lease]) -> dict[LeaseKind, list[_Lease]]:
    groups: dict[LeaseKind, list[_Lease]] = {}
    for lease in leases:
        groups.setdefault(lease.kind, []).append(lease)
    return groups


_keeper = _LeaseKeeper()
os.register_at_fork(after_in_child=_keeper.reset_after_fork)


@contextmanager
def keep_lease(kind: LeaseKind, key: Hashable, every_s: float, watch: bool = False) -> Iterator[None]:
    """Keep `key`'s lease renewed every `every_s` seconds while the block runs (by the process's
    lease keeper), the block's thread registered as running leased work (interruptible by a
    stopping worker); with `watch`, interrupt the block with WorkCancelled once the work is no
    longer wanted (within CHECK_EVERY_S).

    A long generator call reports no progress for minutes; the keeper keeps the lease alive
    through it. Once `kind.renew` says the claim is lost, renewal stops.
    """
    with (
        _leased_thread() as leased,
        _kept(_Lease(kind, key, every_s, watch, leased, time.monotonic() + every_s)),
    ):
        yield


@contextmanager
def hold_lease(kind: LeaseKind, key: Hashable, every_s: float) -> Iterator[None]:
    """Keep `key`'s lease renewed while the block runs, and nothing more: for the whole of an
    attempt, from its claim to its store, so that a worker slowed down by its load between
    generating and storing does not look dead. Interrupts stay where `keep_lease` allows them."""
    with _kept(_Lease(kind, key, every_s, False, None, time.monotonic() + every_s)):
        yield


@contextmanager
def _kept(lease: _Lease) -> Iterator[None]:
    _keeper.add(lease)
    try:
        yield
    finally:
        _keeper.remove(lease)
