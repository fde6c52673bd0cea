"""Fair share, measured side by side in one run: the release window (RELEASE_WINDOW unset, fair)
against the release-everything design (RELEASE_WINDOW=0, first come first served).

- small_build_under_load: user B's 1-concept build, started 3 s after user A's big build, against
  B's time on an idle system (target: within 3x).
- work_conservation: A's build alone, steps/s with the window against without (target >= 0.95).
- rate_limit_share: 20 calls per 2 s, A's and B's large builds both waiting; B's share of the
  calls admitted over the measured interval (target 0.4-0.6).

The offline generator spends 50 ms a call; workers as configured by default (3 + 5)."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import func, select

from app.database import utcnow
from app.extensions import db
from app.models import Build, BuildStep, GeneratorCall, User
from bench.harness import Deployment, deployment, wait_build

LATENCY = {"GENERATOR_LATENCY_MS": "50"}
WINDOWED = {"RELEASE_WINDOW": ""}  # unset: twice each queue's workers
RELEASE_EVERYTHING = {"RELEASE_WINDOW": "0", "RELEASE_POLICY": "fifo"}  # the design before windows


def _user(run: Deployment, email: str) -> dict[str, str]:
    with run.app.app_context():
        user = User(email=email)
        user.set_password("bench")
        token = user.issue_token()
        db.session.add(user)
        db.session.commit()
    return {"Authorization": f"Bearer {token}"}


def _start(run: Deployment, auth: dict[str, str], concepts: int, name: str) -> str:
    client = run.app.test_client()
    path = client.post(
        "/api/learning-paths",
        json={"name": name, "topic": "statistics", "conceptCount": concepts},
        headers=auth,
    ).get_json()
    return client.post(f"/api/jobs/build/{path['id']}", headers=auth).get_json()["jobId"]


def _build_seconds(run: Deployment, build_id: str) -> float:
    """From the build's creation to its completion, as the database recorded them."""
    with run.app.app_context():
        created, completed = db.session.execute(
            select(Build.created_at, Build.completed_at).where(Build.id == build_id)
        ).one()
        db.session.remove()
    return (completed - created).total_seconds()


def _steps_per_s(run: Deployment, build_id: str) -> tuple[int, float]:
    with run.app.app_context():
        count, first, last = db.session.execute(
            select(
                func.count(BuildStep.id), func.min(BuildStep.started_at), func.max(BuildStep.completed_at)
            ).where(BuildStep.build_id == build_id, BuildStep.status == "completed")
        ).one()
        db.session.remove()
    return count, count / (last - first).total_seconds()


def _warm_up(run: Deployment) -> None:
    """Start the workers and wait until a 1-concept build has gone through them all (starting
    them takes seconds, more on a loaded machine, and must not count in any figure)."""
    run.worker()
    wait_build(run.app.test_client(), run.auth, _start(run, run.auth, 1, "Warm-up"), timeout=600)


def _timeline(run: Deployment, build_id: str) -> dict[str, float]:
    """Where a build's time went, summed over its steps: waiting to be released (created to
    queued), waiting in Redis (queued to started) and running (started to completed)."""
    with run.app.app_context():
        steps = db.session.execute(
            select(
                BuildStep.created_at, BuildStep.queued_at, BuildStep.started_at, BuildStep.completed_at
            ).where(BuildStep.build_id == build_id, BuildStep.status == "completed")
        ).all()
        db.session.remove()
    sums = {"held_back_s": 0.0, "in_queue_s": 0.0, "running_s": 0.0}
    for created, queued, started, completed in steps:
        if None in (created, queued, started, completed):
            continue
        sums["held_back_s"] += max(0.0, (queued - created).total_seconds())
        sums["in_queue_s"] += max(0.0, (started - queued).total_seconds())
        sums["running_s"] += (completed - started).total_seconds()
    return {name: round(value, 2) for name, value in sums.items()} | {"steps": len(steps)}


def _cancel(run: Deployment, auth: dict[str, str], build_id: str) -> None:
    run.app.test_client().post(f"/api/jobs/{build_id}/cancel", headers=auth)


def _small_under_load(release: dict[str, str], big: int) -> dict[str, Any]:
    """B's 1-concept build alone, then again 3 s into A's big build."""
    with deployment(**LATENCY, **release) as run:
        _warm_up(run)
        a, b = run.auth, _user(run, "b@example.com")
        client = run.app.test_client()
        idle_build = _start(run, b, 1, "Small idle")
        wait_build(client, b, idle_build, timeout=120)
        idle = _build_seconds(run, idle_build)
        big_build = _start(run, a, big, "Big")
        time.sleep(3)
        loaded_build = _start(run, b, 1, "Small loaded")
        wait_build(client, b, loaded_build, timeout=1800)
        loaded = _build_seconds(run, loaded_build)
        _cancel(run, a, big_build)
        where = {"idle": _timeline(run, idle_build), "under_load": _timeline(run, loaded_build)}
    return {
        "idle_s": round(idle, 2),
        "under_load_s": round(loaded, 2),
        "ratio": round(loaded / idle, 2),
        "steps_time": where,
    }


def small_build_under_load(quick: bool) -> dict[str, Any]:
    big = 60 if quick else 300
    fair = _small_under_load(WINDOWED, big)
    everything = _small_under_load(RELEASE_EVERYTHING, big)
    return {
        "big_build_concepts": big,
        "windowed": fair,
        "release_everything": everything,
        "target_ratio": 3.0,
    }


def _alone(release: dict[str, str], concepts: int) -> dict[str, Any]:
    with deployment(**LATENCY, **release) as run:
        _warm_up(run)
        build_id = _start(run, run.auth, concepts, "Alone")
        wait_build(run.app.test_client(), run.auth, build_id, timeout=3600)
        steps, rate = _steps_per_s(run, build_id)
    return {"steps": steps, "steps_per_s": round(rate, 1)}


def work_conservation(quick: bool) -> dict[str, Any]:
    concepts = 60 if quick else 300
    fair = _alone(WINDOWED, concepts)
    everything = _alone(RELEASE_EVERYTHING, concepts)
    return {
        "concepts": concepts,
        "windowed": fair,
        "release_everything": everything,
        "ratio": round(fair["steps_per_s"] / everything["steps_per_s"], 3),
        "target": 0.95,
    }


def _calls_by_owner(run: Deployment, since: Any, until: Any) -> dict[int, int]:
    with run.app.app_context():
        rows = db.session.execute(
            select(Build.triggered_by, func.count(GeneratorCall.id))
            .join(Build, Build.id == GeneratorCall.build_id)
            .where(GeneratorCall.called_at >= since, GeneratorCall.called_at < until)
            .group_by(Build.triggered_by)
        ).all()
        db.session.remove()
    return {user_id: count for user_id, count in rows}


def _share(release: dict[str, str], seconds: float) -> dict[str, Any]:
    limits = {"JOB_RATE_LIMIT_MAX": "20", "JOB_RATE_LIMIT_DURATION": "2000"}
    with deployment(**LATENCY, **release, **limits) as run:
        _warm_up(run)
        a, b = run.auth, _user(run, "b@example.com")
        a_build = _start(run, a, 100, "A large")
        time.sleep(3)
        b_build = _start(run, b, 100, "B large")
        with run.app.app_context():
            ids = dict(db.session.execute(select(Build.id, Build.triggered_by)).all())
            db.session.remove()
        time.sleep(6)  # both builds fanned out: their steps wait for slots
        since = utcnow()
        time.sleep(seconds)
        calls = _calls_by_owner(run, since, utcnow())
        _cancel(run, a, a_build)
        _cancel(run, b, b_build)
    a_calls, b_calls = calls.get(ids[a_build], 0), calls.get(ids[b_build], 0)
    return {"calls_a": a_calls, "calls_b": b_calls, "share_b": round(b_calls / max(1, a_calls + b_calls), 3)}


def rate_limit_share(quick: bool) -> dict[str, Any]:
    seconds = 10.0 if quick else 30.0
    fair = _share(WINDOWED, seconds)
    everything = _share(RELEASE_EVERYTHING, seconds)
    return {
        "limit": "20 calls per 2 s",
        "measured_s": seconds,
        "fair": fair,
        "release_everything_fifo": everything,
        "target": [0.4, 0.6],
    }
