"""`python -m bench.step_counts`: what a step costs, counted, beside `bench.profile_step`'s time.

Runs `bench.profile_step` and counts, inside the steps only: this process's CPU time, the SQL
statements and commits (engine events), and Redis round trips (`send_packed_command` calls: a
pipeline or a script is one). Counts do not move with the machine's load, as times do.

To compare with another checkout side by side, run this file from that checkout's directory
(`cd ../main && python ../wt/bench/step_counts.py`): it profiles the app found there.
"""

from __future__ import annotations

import contextlib
import cProfile
import io
import os
import runpy
import sys
import time
from collections.abc import Callable
from typing import Any

import redis.connection
from sqlalchemy import event
from sqlalchemy.engine import Engine

sys.path.insert(0, os.getcwd())  # the checkout run from, when run as a file

counts = {"cpu": 0.0, "sql": 0, "commits": 0, "redis": 0, "steps": 0}
inside_a_step = [False]


@event.listens_for(Engine, "before_cursor_execute")
def _count_statement(*_args: Any) -> None:
    counts["sql"] += inside_a_step[0]


@event.listens_for(Engine, "commit")
def _count_commit(*_args: Any) -> None:
    counts["commits"] += inside_a_step[0]


def _counting_round_trips(send: Callable[..., Any]) -> Callable[..., Any]:
    def send_packed_command(self: Any, *args: Any, **kwargs: Any) -> Any:
        counts["redis"] += inside_a_step[0]
        return send(self, *args, **kwargs)

    return send_packed_command


def _counting_steps(runcall: Callable[..., Any]) -> Callable[..., Any]:
    """profile_step runs each step through `Profile.runcall`: count what happens inside it."""

    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        inside_a_step[0], cpu = True, time.process_time()
        try:
            return runcall(self, *args, **kwargs)
        finally:
            inside_a_step[0] = False
            counts["cpu"] += time.process_time() - cpu
            counts["steps"] += 1

    return counted


def main() -> None:
    connection = redis.connection.AbstractConnection
    connection.send_packed_command = _counting_round_trips(connection.send_packed_command)  # type: ignore[method-assign]
    cProfile.Profile.runcall = _counting_steps(cProfile.Profile.runcall)  # type: ignore[method-assign]
    report = io.StringIO()
    with contextlib.redirect_stdout(report):
        runpy.run_module("bench.profile_step", run_name="__main__")
    steps = counts["steps"] or 1
    print(
        f"{report.getvalue().splitlines()[0]} | in the steps, a step: "
        f"CPU {1000 * counts['cpu'] / steps:.2f} ms, SQL {counts['sql'] / steps:.2f}, "
        f"commits {counts['commits'] / steps:.2f}, Redis round trips {counts['redis'] / steps:.2f}"
    )


if __name__ == "__main__":
    main()
