"""Leases: a running step renews one; a lease that lapses means the step's worker is gone.

The renewal thread also watches whether the work is still wanted (a cancelled build) and,
when it is not, interrupts the job in the main thread with WorkCancelled, the way RQ's own
job timeout interrupts it with a signal.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)

CHECK_EVERY_S = 0.5
_interruptible = threading.Event()
_shutting_down = threading.Event()


class WorkCancelled(Exception):
    """The work was cancelled while it ran."""


class WorkerShuttingDown(Exception):
    """The worker must exit before this work could finish: it goes back to the queue."""


def _raise_cancelled(_signum: int, _frame: object) -> None:
    if _interruptible.is_set():
        if _shutting_down.is_set():
            raise WorkerShuttingDown("the worker is shutting down")
        raise WorkCancelled("cancelled while running")


def interrupt_for_shutdown() -> bool:
    """Stop the leased work in the main thread (at the end of the shutdown grace period).

    Returns False when no leased work is running (nothing to interrupt).
    """
    if not _interruptible.is_set():
        return False
    _shutting_down.set()
    main_id = threading.main_thread().ident
    if main_id is not None:
        signal.pthread_kill(main_id, signal.SIGUSR1)
    return True


def _install_interrupt_handler() -> bool:
    if threading.current_thread() is not threading.main_thread():
        return False
    if signal.getsignal(signal.SIGUSR1) is not _raise_cancelled:
        signal.signal(signal.SIGUSR1, _raise_cancelled)
    return True


@contextmanager
def keep_lease(
    renew: Callable[[], bool], every_s: float, still_wanted: Callable[[], bool] | None = None
) -> Iterator[None]:
    """Call `renew` every `every_s` seconds in a thread while the block runs.

    A long generator call reports no progress for minutes; the thread keeps the lease alive
    through it. `renew` returns False once the claim is lost, and renewal stops.
    """
    stop = threading.Event()
    interruptible = _install_interrupt_handler()
    main_id = threading.main_thread().ident

    def _watch() -> None:
        next_renewal = time.monotonic() + every_s
        while not stop.wait(min(CHECK_EVERY_S, every_s)):
            try:
                if still_wanted is not None and not still_wanted():
                    if interruptible and not stop.is_set() and main_id is not None:
                        signal.pthread_kill(main_id, signal.SIGUSR1)
                    return
                if time.monotonic() >= next_renewal:
                    next_renewal = time.monotonic() + every_s
                    if not renew():
                        return
            except Exception:  # a database blip: try again next round, the lease has slack
                log.warning("lease renewal failed", exc_info=True)

    thread = threading.Thread(target=_watch, name="lease-renewal", daemon=True)
    _interruptible.set()
    thread.start()
    try:
        yield
    finally:
        _interruptible.clear()
        stop.set()
        thread.join()
