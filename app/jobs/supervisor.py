"""`python worker.py` with no arguments: one process per worker slot, kept alive.

The orchestrator, lesson-plan and dead-letter queues share one process; decompose-concept
gets JOB_CONCURRENCY_DECOMPOSE processes and generate-ku JOB_CONCURRENCY_GENERATE_KU. The
supervisor restarts a child that dies, runs the recovery sweep and RQ's scheduler (threads of
its own, so they never die with a child), and on SIGTERM passes it on
and waits up to WORKER_SHUTDOWN_TIMEOUT_S for the jobs in hand before killing what is left
(whose steps the recovery sweep then runs again elsewhere).
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from flask import Flask

from app.jobs.queues import (
    BUILD_PATH_QUEUE,
    DEAD_LETTER_QUEUE,
    DECOMPOSE_QUEUE,
    GENERATE_KU_QUEUE,
    LESSON_PLANS_QUEUE,
)
from app.jobs.recovery import start_recovery_thread
from app.jobs.scheduling import start_scheduler_thread

log = logging.getLogger(__name__)

WORKER_SCRIPT = Path(__file__).resolve().parents[2] / "worker.py"
RESPAWN_DELAY_S = 1.0
PR_SET_PDEATHSIG = 1


def worker_slots(config: Mapping[str, Any]) -> Sequence[tuple[str, ...]]:
    """The queues of each worker process."""
    return (
        [(BUILD_PATH_QUEUE, LESSON_PLANS_QUEUE, DEAD_LETTER_QUEUE)]
        + [(DECOMPOSE_QUEUE,)] * config["JOB_CONCURRENCY_DECOMPOSE"]
        + [(GENERATE_KU_QUEUE,)] * config["JOB_CONCURRENCY_GENERATE_KU"]
    )


def _spawn(queues: tuple[str, ...]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            str(WORKER_SCRIPT),
            "--queues",
            ",".join(queues),
            "--no-recovery",
            "--no-scheduler",
            "--parent",
            str(os.getpid()),
        ]
    )


def stop_with_parent(parent_pid: int) -> None:
    """Ask Linux for SIGTERM when the supervisor dies (even by SIGKILL), so a worker never
    outlives it and doubles up with the next supervisor's; the job in hand is finished or
    put back as on any SIGTERM. Elsewhere a no-op."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent_pid:  # it died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)


def run_supervisor(app: Flask) -> None:
    """Run and watch the worker processes until SIGTERM or SIGINT."""
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    slots = worker_slots(app.config)
    children = [_spawn(queues) for queues in slots]
    log.info("supervisor: %s worker processes for %s", len(children), slots)
    helpers = [start_recovery_thread(app, stopping), start_scheduler_thread(app, stopping)]
    while not stopping.wait(0.5):
        for i, child in enumerate(children):
            if child.poll() is not None and not stopping.is_set():
                log.warning(
                    "supervisor: worker %s for %s exited (%s); restarting",
                    child.pid,
                    slots[i],
                    child.returncode,
                )
                time.sleep(RESPAWN_DELAY_S)
                children[i] = _spawn(slots[i])
    _stop_children(children, app.config["WORKER_SHUTDOWN_TIMEOUT_S"])
    for helper in helpers:
        helper.join(timeout=5)
    log.info("supervisor: stopped")


def _stop_children(children: list[subprocess.Popen[bytes]], timeout_s: float) -> None:
    """SIGTERM each (finish the job in hand), then SIGKILL whatever outlives the timeout."""
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    for child in children:
        try:
            child.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("supervisor: worker %s still busy after %ss; killing it", child.pid, timeout_s)
            child.kill()
            child.wait()
