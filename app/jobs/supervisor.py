"""`python worker.py` with no arguments: WORKER_PROCESSES worker processes, kept alive.

Each worker slot is a thread of one of them (app.jobs.threaded): the orchestrator, lesson-plan
and dead-letter queues share one thread; decompose-concept gets JOB_CONCURRENCY_DECOMPOSE
threads and generate-ku JOB_CONCURRENCY_GENERATE_KU, spread evenly over the processes. The
supervisor restarts a child that dies, runs the recovery sweep and RQ's scheduler (threads of
its own, so they never die with a child), and on SIGTERM passes it on
and waits up to WORKER_SHUTDOWN_TIMEOUT_S for the jobs in hand before killing what is left
(whose steps the recovery sweep then runs again elsewhere).
"""

from __future__ import annotations

import ctypes
import logging
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
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
from app.jobs.threaded import Slot, format_slot

log = logging.getLogger(__name__)

WORKER_SCRIPT = Path(__file__).resolve().parents[2] / "worker.py"
RESPAWN_DELAY_S = 1.0
PR_SET_PDEATHSIG = 1


# A process serves about this many steps in flight before its one core (the GIL) is the limit.
THREADS_PER_CORE = 50


def worker_process_count(config: Mapping[str, Any]) -> int:
    """WORKER_PROCESSES, or (0) one per THREADS_PER_CORE threads, at most one per CPU core: small
    set-ups stay in one process's memory, big ones use every core."""
    if config["WORKER_PROCESSES"] > 0:
        return int(config["WORKER_PROCESSES"])
    threads = 1 + config["JOB_CONCURRENCY_DECOMPOSE"] + config["JOB_CONCURRENCY_GENERATE_KU"]
    return max(1, min(os.cpu_count() or 1, math.ceil(int(threads) / THREADS_PER_CORE)))


def worker_processes(config: Mapping[str, Any]) -> list[list[Slot]]:
    """The slots (queues and thread count) of each worker process."""
    count = worker_process_count(config)
    plan: list[list[Slot]] = [[] for _ in range(count)]
    plan[0].append(((BUILD_PATH_QUEUE, LESSON_PLANS_QUEUE, DEAD_LETTER_QUEUE), 1))
    for queue, total in (
        (DECOMPOSE_QUEUE, config["JOB_CONCURRENCY_DECOMPOSE"]),
        (GENERATE_KU_QUEUE, config["JOB_CONCURRENCY_GENERATE_KU"]),
    ):
        for i in range(count):
            share = total // count + (1 if i < total % count else 0)
            if share:
                plan[i].append(((queue,), share))
    return [slots for slots in plan if slots]


def _spawn(slots: list[Slot]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            str(WORKER_SCRIPT),
            *[arg for slot in slots for arg in ("--slot", format_slot(slot))],
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
    slots = worker_processes(app.config)
    children = [_spawn(process_slots) for process_slots in slots]
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
