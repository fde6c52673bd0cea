"""A throwaway deployment for benchmarks and chaos runs: redis-server on a free port, a fresh
SQLite file (or a fresh database on TEST_DATABASE_URL's PostgreSQL), workers and gunicorn."""

from __future__ import annotations

import os
import secrets
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from flask import Flask
from flask_migrate import upgrade
from rq import Worker
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from app import create_app
from app.extensions import db
from app.jobs.queues import get_redis
from app.models import User
from tests.helpers.workers import rq_workers_of, wait_for_workers
from tests.services import ProcessGroup, RedisServer, start_gunicorn, start_worker, wait_until

BENCH_EMAIL, BENCH_PASSWORD = "bench@example.com", "bench"  # the deployment's admin, for sign-in forms
QUIET = {
    "LOG_LEVEL": "WARNING",
    "JOB_RATE_LIMIT_MAX": "0",
    "JOB_LEASE_TTL_S": "3",
    "JOB_RECOVERY_INTERVAL_S": "1",
    "JOB_BACKOFF_DELAY": "100",
    "POLL_INTERVAL_S": "1",
}


@dataclass
class Deployment:
    root: Path
    redis: RedisServer
    env: dict[str, str]
    app: Flask
    token: str
    groups: list[ProcessGroup] = field(default_factory=list)

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def worker(self, **extra: Any) -> ProcessGroup:
        """Start `python worker.py` and return once each of its RQ workers has registered."""
        env = {**self.env, **{k: str(v) for k, v in extra.items()}}
        with self.app.app_context():
            redis = get_redis()  # the Redis the workers use: the Sentinels' master when they are set
        registered = Worker.count(connection=redis)
        group = start_worker(env, self.root / f"worker-{len(self.groups)}.log")
        self.groups.append(group)
        wait_for_workers(redis, registered + rq_workers_of({**self.app.config, **env}))
        return group

    def web(self, **extra: Any) -> str:
        env = {**self.env, **{k: str(v) for k, v in extra.items()}}
        group, base = start_gunicorn(env, self.root / f"web-{len(self.groups)}.log", workers=2)
        self.groups.append(group)
        return base

    def stop_processes(self) -> None:
        for group in self.groups:
            group.stop()
        self.groups.clear()


def _database_url(root: Path) -> tuple[str, str | None]:
    server = os.environ.get("TEST_DATABASE_URL")
    if not server:
        return f"sqlite:///{root / 'bench.db'}", None
    name = f"cb_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(make_url(server).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(server).set(database=name).render_as_string(hide_password=False), name


@contextmanager
def deployment(**settings: Any) -> Iterator[Deployment]:
    """Everything a run needs, torn down afterwards (only the processes it started)."""
    root = Path(tempfile.mkdtemp(prefix="cb-bench-"))
    redis = RedisServer(root / "redis")
    redis.start()
    database_url, _ = _database_url(root)
    env = {
        **os.environ,
        **QUIET,
        "REDIS_URL": redis.url,
        "DATABASE_URL": database_url,
        "SECRET_KEY": os.environ.get("SECRET_KEY") or secrets.token_urlsafe(32),  # one per run
        **{k: str(v) for k, v in settings.items()},
    }
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        app = create_app()
        with app.app_context():
            upgrade()
            user = User(email=BENCH_EMAIL, is_admin=True)
            user.set_password(BENCH_PASSWORD)
            token = user.issue_token()
            db.session.add(user)
            db.session.commit()
        run = Deployment(root, redis, env, app, token)
        try:
            yield run
        finally:
            run.stop_processes()
            redis.stop()
    finally:
        os.environ.clear()
        os.environ.update(saved)


def start_path_build(run: Deployment, concepts: int, name: str = "Bench") -> str:
    """Create a learning path of `concepts` concepts and start its build; returns the build id."""
    client = run.app.test_client()
    path = client.post(
        "/api/learning-paths",
        json={"name": name, "topic": "statistics", "conceptCount": concepts},
        headers=run.auth,
    ).get_json()
    return client.post(f"/api/jobs/build/{path['id']}", headers=run.auth).get_json()["jobId"]


# Builds that ended `failed` while a benchmark waited for them: their figures measure a failure,
# so `python -m bench` names them and exits 1 (a full-size density run once failed unnoticed).
FAILED_BUILDS: list[dict[str, Any]] = []


def wait_build(
    base_or_client: Any, auth: dict[str, str], build_id: str, timeout: float = 1800
) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        build = _get(base_or_client, f"/api/jobs/{build_id}", auth)
        if "status" not in build:  # a 503 while a chaos scenario has the database down
            return None
        return build if build["status"] in ("completed", "failed", "cancelled") else None

    build = wait_until(done, timeout=timeout, interval=0.25, message=f"build {build_id}")
    if build["status"] == "failed":
        FAILED_BUILDS.append({"id": build_id, "error": build.get("error")})
    return build


def _get(base_or_client: Any, url: str, auth: dict[str, str]) -> dict[str, Any]:
    if isinstance(base_or_client, str):
        return requests.get(base_or_client + url, headers=auth, timeout=30).json()
    return base_or_client.get(url, headers=auth).get_json()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def rss_peak_kb(pid: int) -> int:
    """The peak resident set (VmHWM) of a process and its children, from /proc."""
    total = 0
    for candidate in [pid, *_children(pid)]:
        try:
            for line in Path(f"/proc/{candidate}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def pss_kb(pid: int) -> int:
    """Proportional set size of a process and its children, from /proc: pages shared between
    gunicorn's master and workers are counted once, not once a process as RSS counts them."""
    total = 0
    for candidate in [pid, *_children(pid)]:
        try:
            for line in Path(f"/proc/{candidate}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def cpu_seconds(pid: int) -> float:
    """User and system CPU time used so far by a process and its children (those alive)."""
    total = 0
    for candidate in [pid, *_children(pid)]:
        try:
            fields = Path(f"/proc/{candidate}/stat").read_text().split(")")[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().split(")")[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if parent == pid:
                found += [int(entry.name), *_children(int(entry.name))]
    return found


def timed(fn, *args: Any, **kwargs: Any) -> tuple[Any, float]:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - started
