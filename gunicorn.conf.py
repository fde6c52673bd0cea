"""gunicorn reads this file from the working directory (Procfile, `make run`): hooks only, the
command line keeps the settings."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from typing import Any

import gevent


def post_worker_init(worker: Any) -> None:
    """On SIGTERM, end the worker's open event streams at once. gunicorn then waits only for
    real requests, not --graceful-timeout (25 s) for streams that never end by themselves: a
    deploy or a Ctrl-C of `make run` with a page open took 25 s before."""
    doorbell = getattr(worker.wsgi, "extensions", {}).get("build_doorbell")
    if doorbell is None:
        return

    start_soon = _starter(worker)

    def handle_exit(signum: int, frame: Any) -> None:
        worker.alive = False  # what gunicorn's own handler does
        # Not in the handler itself: ringing takes a lock the interrupted code may hold.
        start_soon(doorbell.close)

    signal.signal(signal.SIGTERM, handle_exit)


def _starter(worker: Any) -> Callable[[Callable[[], None]], object]:
    """How a signal handler starts work without blocking: a greenlet under the gevent worker
    (starting a patched thread waits for it, which the event loop refuses), else a thread."""
    if "gevent" in type(worker).__module__:
        return gevent.spawn
    return lambda work: threading.Thread(target=work, daemon=True).start()
