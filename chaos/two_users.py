"""Chaos with two users' builds in flight under the release window: workers SIGKILLed, Redis
restarted, Redis flushed. Every invariant (chaos.checks) must hold for both builds, and no queue
may ever hold more of their steps than the window (and one place per user past it)."""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import func, select

from app.extensions import db
from app.jobs.queues import DECOMPOSE_QUEUE, GENERATE_KU_QUEUE
from app.models import BuildStep, User
from app.models.statuses import IN_FLIGHT
from app.pipelines.learning_paths.release import release_window
from bench.harness import Deployment, _children, deployment, start_path_build, wait_build
from chaos.checks import check_build
from tests.services import wait_until

QUEUE_OF_TYPE = {"sub-concepts": DECOMPOSE_QUEUE, "knowledge-units": GENERATE_KU_QUEUE}


def _second_user(run: Deployment) -> dict[str, str]:
    with run.app.app_context():
        user = User(email="second@example.com")
        user.set_password("chaos")
        token = user.issue_token()
        db.session.add(user)
        db.session.commit()
    return {"Authorization": f"Bearer {token}"}


def _start_as(run: Deployment, auth: dict[str, str], concepts: int) -> str:
    client = run.app.test_client()
    path = client.post(
        "/api/learning-paths",
        json={"name": "Second", "topic": "biology", "conceptCount": concepts},
        headers=auth,
    ).get_json()
    return client.post(f"/api/jobs/build/{path['id']}", headers=auth).get_json()["jobId"]


def _in_flight(run: Deployment) -> dict[str, int]:
    with run.app.app_context():
        rows = db.session.execute(
            select(BuildStep.type, func.count())
            .where(BuildStep.status.in_(IN_FLIGHT))
            .group_by(BuildStep.type)
        ).all()
        db.session.remove()
    return {kind: count for kind, count in rows}


def _sigkill_some(run: Deployment, kills: int) -> None:
    supervisor = run.groups[0]
    for _ in range(kills):
        time.sleep(random.uniform(0.3, 1.0))
        if children := _children(supervisor.pid):
            os.kill(random.choice(children), signal.SIGKILL)


def _restart_redis(run: Deployment) -> None:
    run.redis.stop()
    time.sleep(2)
    run.redis.start()


def _flushall(run: Deployment) -> None:
    run.redis.client().flushall()


def _one(break_it: Callable[[Deployment], None], concepts: int) -> dict[str, Any]:
    with deployment(GENERATOR_LATENCY_MS=200, JOB_MAX_WORKER_LOSSES=1000) as run:
        run.worker()
        time.sleep(2)
        other = _second_user(run)
        first = start_path_build(run, concepts, name="First")
        second = _start_as(run, other, concepts)
        with run.app.app_context():
            windows = {kind: release_window(queue) for kind, queue in QUEUE_OF_TYPE.items()}
        most: dict[str, int] = {}
        sampling = threading.Event()

        def sample() -> None:
            while not sampling.wait(0.1):
                try:
                    for kind, count in _in_flight(run).items():
                        most[kind] = max(most.get(kind, 0), count)
                except Exception:  # the database busy for a moment: the next sample counts
                    continue

        threading.Thread(target=sample, daemon=True).start()
        wait_until(
            lambda: _in_flight(run).get("knowledge-units", 0) >= 2, timeout=120, interval=0.2, message="units"
        )
        break_it(run)
        client = run.app.test_client()
        wait_build(client, run.auth, first, timeout=900)
        wait_build(client, other, second, timeout=900)
        sampling.set()
        problems = check_build(run.app, first) + check_build(run.app, second)
        problems += [  # a user with nothing in flight may take one place past a full window
            f"{kind}: {most[kind]} steps in flight, window {window} + 1 per user"
            for kind, window in windows.items()
            if window is not None and most.get(kind, 0) > window + 2
        ]
    return {"windows": windows, "most_in_flight": most, "problems": problems}


def two_users_in_flight(quick: bool) -> dict[str, Any]:
    """SIGKILL, Redis restart and FLUSHALL, each with two users' builds in flight."""
    concepts = 3 if quick else 8
    results = {
        "sigkill_workers": _one(lambda run: _sigkill_some(run, 3 if quick else 10), concepts),
        "redis_restart": _one(_restart_redis, concepts),
        "redis_flushall": _one(_flushall, concepts),
    }
    return {
        **{name: {k: v for k, v in result.items() if k != "problems"} for name, result in results.items()},
        "problems": [
            f"{name}: {problem}" for name, result in results.items() for problem in result["problems"]
        ],
    }
