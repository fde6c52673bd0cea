"""gunicorn reads this file from the working directory (Procfile, `make run`): hooks only, the
command line keeps the settings."""

from __future__ import annotations

import signal
import threading
from typing import Any


def post_worker_init(worker: Any) -> None:
    """On SIGTERM, end the worker's open event streams at once. gunicorn then waits only for
    real requests, not --graceful-timeout (25 s) for streams that never end by themselves: a
    deploy or a Ctrl-C of `make run` with a page open took 25 s before."""
    doorbell = getattr(worker.wsgi, "extensions", {}).get("build_doorbell")
    if doorbell is None:
        return

    def handle_exit(signum: int, frame: Any) -> None:
        worker.alive = False  # what gunicorn's own handler does
        # Not in the handler itself: ringing takes a lock the interrupted code may hold (under
        # gevent's patched threading, this thread is a greenlet).
        threading.Thread(target=doorbell.close, daemon=True).start()

    signal.signal(signal.SIGTERM, handle_exit)
