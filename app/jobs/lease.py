"""Leases: a running step renews one; a lease that lapses means the step's worker is gone.

The renewal thread also watches whether the work is still wanted (a cancelled build) and,
when it is not, interrupts the job's own thread with WorkCancelled, the way RQ's own job
timeout interrupts it. A worker process runs many jobs at once, one per thread, so an
interrupt names its thread: the main thread gets a signal (which also cuts short a blocking
sleep or read), any other thread an asynchronous exception (raised at its next bytecode) and
a wake-up of its interruptible sleeps (`interruptible_sleep`).
"""

from __future__ import annotations

import ctypes
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

CHECK_EVERY_S = 0.5


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


@contextmanager
def keep_lease(
    renew: Callable[[], bool], every_s: float, still_wanted: Callable[[], bool] | None = None
) -> Iterator[None]:
    """Call `renew` every `every_s` seconds in a thread while the block runs.

    A long generator call reports no progress for minutes; the thread keeps the lease alive
    through it. `renew` returns False once the claim is lost, and renewal stops.
    """
    stop = threading.Event()

    def _watch(leased: _LeasedThread) -> None:
        next_renewal = time.monotonic() + every_s
        while not stop.wait(min(CHECK_EVERY_S, every_s)):
            try:
                if still_wanted is not None and not still_wanted():
                    if not stop.is_set():
                        _interrupt(leased, WorkCancelled)
                    return
                if time.monotonic() >= next_renewal:
                    next_renewal = time.monotonic() + every_s
                    if not renew():
                        return
            except Exception:  # a database blip: try again next round, the lease has slack
                log.warning("lease renewal failed", exc_info=True)

    with _leased_thread() as leased:
        thread = threading.Thread(target=_watch, args=(leased,), name="lease-renewal", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()
