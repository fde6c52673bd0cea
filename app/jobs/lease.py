"""Leases: a running step renews one; a lease that lapses means the step's worker is gone."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)


@contextmanager
def keep_lease(renew: Callable[[], bool], every_s: float) -> Iterator[None]:
    """Call `renew` every `every_s` seconds in a thread while the block runs.

    A long generator call reports no progress for minutes; the thread keeps the lease
    alive through it. `renew` returns False once the claim is lost, and renewal stops.
    """
    stop = threading.Event()

    def _renew_until_stopped() -> None:
        while not stop.wait(every_s):
            try:
                if not renew():
                    return
            except Exception:  # a database blip: try again next round, the lease has slack
                log.warning("lease renewal failed", exc_info=True)

    thread = threading.Thread(target=_renew_until_stopped, name="lease-renewal", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
