"""Many SSE viewers against the Procfile's `web` command, beside the old thread design.

Viewers (many users, many builds, some paused, some running on a real worker) hold build event
streams open and reconnect as a browser does (after `retry:`, with Last-Event-ID), while probes
time `/healthz`, the API and a build page's HTMX poll. The load client is one asyncio loop of
raw sockets on loopback, bounded in viewers and in time. Memory is the PSS of the web process
tree (gunicorn's master and workers), read from /proc at the end of the hold.
"""

from __future__ import annotations

import asyncio
import math
import os
import re
import shlex
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import requests

from app.extensions import db
from app.models import Build, User
from bench.harness import Deployment, cpu_seconds, deployment, percentile, pss_kb, start_path_build
from tests.services import ROOT, ProcessGroup, free_port, wait_until

THREADS_BASELINE = ["--worker-class", "gthread", "--threads", "8", "--graceful-timeout", "25"]
PROBE_TIMEOUT_S = 2.0
EVENT_ID = re.compile(rb"(?m)^id: (\d+)$")


@dataclass
class Load:
    """What the viewers and probes saw during one phase."""

    statuses: Counter[int] = field(default_factory=Counter)
    open_now: int = 0
    open_peak: int = 0
    events: int = 0
    errors: int = 0
    probes: dict[str, list[float]] = field(default_factory=dict)
    probe_failures: Counter[str] = field(default_factory=Counter)


def _procfile_web() -> list[str]:
    line = next(line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith("web:"))
    return shlex.split(line.removeprefix("web:"), comments=True)[1:]  # after "gunicorn"


def _start_web(run: Deployment, options: list[str], name: str) -> tuple[ProcessGroup, int]:
    port = free_port()
    argv = [sys.executable, "-m", "gunicorn", *options, "--bind", f"127.0.0.1:{port}"]
    group = ProcessGroup(argv, {**run.env, "WEB_CONCURRENCY": "2"}, run.root / f"web-{name}.log")
    run.groups.append(group)

    def _up() -> bool:
        try:
            return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    wait_until(_up, timeout=60, message=f"{name} web to answer")
    return group, port


def _request(path: str, headers: dict[str, str]) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def _viewer(port: int, build_id: str, token: str, load: Load) -> None:
    """One browser tab: stream, and on an end reconnect after 2 s with Last-Event-ID."""
    last_id: bytes | None = None
    while True:
        headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
        if last_id:
            headers["Last-Event-ID"] = last_id.decode()
        status, opened = 0, False
        writer = None
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(_request(f"/api/jobs/{build_id}/stream", headers))
            status = int((await reader.readline()).split()[1])
            load.statuses[status] += 1
            if status == 200:
                opened = True
                load.open_now += 1
                load.open_peak = max(load.open_peak, load.open_now)
                tail = b""
                while data := await reader.read(8192):
                    found = EVENT_ID.findall(tail + data)
                    if found:
                        load.events += len(found)
                        last_id = found[-1]
                    tail = data[-64:]
        except (OSError, ValueError, IndexError, asyncio.IncompleteReadError):
            load.errors += 1
        finally:
            if opened:
                load.open_now -= 1
            if writer is not None:
                writer.close()
        if status == 204:
            return  # the build is final and nothing was missed: a browser stops too
        await asyncio.sleep(2)


async def _probe(port: int, name: str, path: str, headers: dict[str, str], load: Load) -> None:
    """Ask once every 100 ms, one request at a time; each answer within PROBE_TIMEOUT_S."""
    latencies = load.probes.setdefault(name, [])
    while True:
        started = time.perf_counter()
        try:
            connecting = asyncio.open_connection("127.0.0.1", port)
            reader, writer = await asyncio.wait_for(connecting, PROBE_TIMEOUT_S)
            writer.write(_request(path, headers))
            answer = await asyncio.wait_for(reader.read(), PROBE_TIMEOUT_S)
            writer.close()
            if answer.split(b" ", 2)[1] != b"200":
                raise ValueError(answer[:80])
            latencies.append((time.perf_counter() - started) * 1000)
        except (OSError, ValueError, IndexError, TimeoutError):
            load.probe_failures[name] += 1
        await asyncio.sleep(0.1)


async def _drive(
    port: int,
    viewers: list[tuple[str, str]],
    probes: dict[str, Any],
    hold_s: float,
    memory: Callable[[], int],
) -> tuple[Load, int]:
    """Ramp the viewers up, probe for `hold_s`, read the memory while all are still open."""
    load = Load()
    tasks = []
    ramp_s = max(1.0, len(viewers) / 200)  # 200 new streams a second, as after a deploy
    for n, (build_id, token) in enumerate(viewers):
        tasks.append(asyncio.create_task(_viewer(port, build_id, token, load)))
        if n % 20 == 19:
            await asyncio.sleep(ramp_s / (len(viewers) / 20))
    tasks += [asyncio.create_task(_probe(port, name, *args, load)) for name, args in probes.items()]
    await asyncio.sleep(hold_s)
    memory_kb = memory()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return load, memory_kb


def _users(run: Deployment, count: int) -> list[str]:
    """Tokens of `count` users (no passwords: they only use the API)."""
    tokens = []
    with run.app.app_context():
        for n in range(count):
            user = User(email=f"viewer{n}@example.com", password_hash="!")
            tokens.append(user.issue_token())
            db.session.add(user)
        db.session.commit()
    return tokens


def _builds(run: Deployment, tokens: list[str], count: int) -> list[tuple[str, str]]:
    """`count` builds spread over the users, every other one paused: (build id, owner token)."""
    client = run.app.test_client()
    builds = []
    for n in range(count):
        token = tokens[n % len(tokens)]
        owner = replace(run, token=token, groups=[])
        build_id = start_path_build(owner, 30, name=f"Viewed {n}")
        if n % 2:
            client.post(f"/api/jobs/{build_id}/pause", headers=owner.auth)
        builds.append((build_id, token))
    return builds


def _session_cookie(port: int) -> str:
    session = requests.Session()
    page = session.get(f"http://127.0.0.1:{port}/sign-in", timeout=10).text
    token = page.split('name="csrf_token" type="hidden" value="')[1].split('"')[0]
    session.post(
        f"http://127.0.0.1:{port}/sign-in",
        data={"email": "bench@example.com", "password": "bench", "csrf_token": token},
        timeout=10,
    )
    return "; ".join(f"{name}={value}" for name, value in session.cookies.items())


def _phase(
    run: Deployment, name: str, options: list[str], viewers: list[tuple[str, str]], hold_s: float
) -> dict[str, Any]:
    """One web server under the viewers and probes, then stopped."""
    group, port = _start_web(run, options, name)
    build_id = start_path_build(run, 1, name=f"Polled {name}")  # the API probe's; its page is HTMX's
    with run.app.app_context():
        path_id = db.session.get(Build, build_id).path_id
    cookie = _session_cookie(port)
    probes = {
        "healthz": ("/healthz", {}),
        "api_job": (f"/api/jobs/{build_id}", run.auth),
        "htmx_poll": (f"/paths/{path_id}", {"Cookie": cookie, "HX-Request": "true"}),
    }
    idle_mb = round(pss_kb(group.pid) / 1024, 1)
    started, cpu_before = time.monotonic(), cpu_seconds(group.pid)
    load, memory_kb = asyncio.run(_drive(port, viewers, probes, hold_s, lambda: pss_kb(group.pid)))
    cpu_used = cpu_seconds(group.pid) - cpu_before
    memory_mb = round(memory_kb / 1024, 1)
    group.stop(timeout=30)
    run.groups.remove(group)
    seconds = time.monotonic() - started
    return _summary(load, memory_mb, seconds) | {
        "web_pss_idle_mb": idle_mb,
        # CPU the web processes got: against the 2 cores, how starved they were on a shared machine.
        "web_cpu_s": round(cpu_used, 1),
        "web_cpu_share_of_a_core": round(cpu_used / seconds, 2),
    }


def _ms(value: float) -> float | None:
    """None where no answer came in time (JSON has no infinity)."""
    return round(value, 1) if math.isfinite(value) else None


def probe_figures(load: Load) -> dict[str, Any]:
    """Each probe's answers, failures and percentiles."""
    probes = {}
    for name, latencies in load.probes.items():
        failed = load.probe_failures[name]
        every = latencies + [float("inf")] * failed  # a failure counts as slower than any answer
        probes[name] = {
            "answered": len(latencies),
            "failed_or_over_2s": failed,
            "p50_ms": _ms(percentile(every, 0.5)),
            "p99_ms": _ms(percentile(every, 0.99)),
            "max_ms": round(max(latencies), 1) if latencies else None,
        }
    return probes


def _summary(load: Load, memory_mb: float, seconds: float) -> dict[str, Any]:
    return {
        "streams_open_peak": load.open_peak,
        "stream_answers": dict(sorted(load.statuses.items())),
        "events_received": load.events,
        "viewer_errors": load.errors,
        "probes": probe_figures(load),
        "web_pss_mb": memory_mb,
        "seconds": round(seconds, 1),
    }


def sse_viewers(quick: bool) -> dict[str, Any]:
    # Ten viewers a build, one build a user: half the per-user cap (SSE_MAX_STREAMS_PER_USER).
    viewer_count, users, builds, hold_s = (100, 10, 10, 10) if quick else (1000, 100, 100, 60)
    settings = {"GENERATOR_LATENCY_MS": 100, "JOB_CONCURRENCY_DECOMPOSE": 1, "JOB_CONCURRENCY_GENERATE_KU": 1}
    # Quick: short lifetimes, so CI sees the reconnects; full: the default lifetime (300 s).
    lifetime_s = 5 if quick else 300
    with deployment(**settings, SSE_MAX_STREAM_S=lifetime_s) as run:
        tokens = _users(run, users)
        watched = _builds(run, tokens, builds)
        run.worker()
        viewers = [watched[n % len(watched)] for n in range(viewer_count)]
        load_before = os.getloadavg()[0]
        results = {
            "viewers": viewer_count,
            "users": users,
            "builds": builds,
            "paused_builds": builds // 2,
            "stream_lifetime_s": lifetime_s,
            "baseline_gthread_2x8": _phase(
                run, "gthread", ["wsgi:app", *THREADS_BASELINE], viewers, hold_s / 2
            ),
            "ours_procfile": _phase(run, "procfile", _procfile_web(), viewers, hold_s),
        }
        # The machine is shared: its load says how much of the 2 cores the web processes had.
        results["machine_load_1min"] = {"before": load_before, "after": os.getloadavg()[0]}
    return results | {"target": {"healthz_p99_ms": 200}}
