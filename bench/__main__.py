"""`python -m bench [--quick] [--output FILE]`: pipeline overhead against bare RQ, chain
latency, status cost, parallel speed-up, a large build, 1,000 live SSE viewers (bench/sse.py),
pages live by push in Chromium (bench/push.py), 200 such pages on builds in progress
(bench/push_many.py) and worker density: calls in flight, memory and
the rate limit (bench/density.py); prints figures, writes JSON."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import requests
from rq import Queue
from sqlalchemy import func, select

from app.extensions import db
from app.models import Build, BuildStep, Module
from bench import density, harness
from bench.fairshare import rate_limit_share, small_build_under_load, work_conservation
from bench.harness import deployment, median, percentile, rss_peak_kb, start_path_build, wait_build
from bench.push import push_pages
from bench.push_many import push_pages_many
from bench.sse import sse_viewers
from tests.helpers.workers import rq_registries_empty
from tests.services import wait_until

ROOT = Path(__file__).resolve().parent.parent


def _build(run, concepts: int, timeout: float = 3600) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    return wait_build(run.app.test_client(), run.auth, start_path_build(run, concepts), timeout)


def _span(app, build_id: str, kind: str | None = None) -> tuple[int, float]:  # type: ignore[no-untyped-def]
    with app.app_context():
        query = select(
            func.count(BuildStep.id), func.min(BuildStep.started_at), func.max(BuildStep.completed_at)
        ).where(BuildStep.build_id == build_id, BuildStep.status == "completed")
        if kind:
            query = query.where(BuildStep.type == kind)
        count, first, last = db.session.execute(query).one()
    return count, (last - first).total_seconds()


def pipeline_overhead(quick: bool) -> dict[str, Any]:
    concepts = 40 if quick else 420
    workers = {"JOB_CONCURRENCY_DECOMPOSE": 2, "JOB_CONCURRENCY_GENERATE_KU": 2}
    processes = 1 + 2 + 2
    with deployment(**workers) as run:
        run.worker()  # returns once its RQ workers have registered
        build = _build(run, concepts)
        steps, seconds = _span(run.app, build["id"])
        ours = steps / seconds
        queue = Queue("bare", connection=run.redis.client())
        jobs = queue.enqueue_many(
            [Queue.prepare_data("bench.noop.noop", (n,), result_ttl=600) for n in range(steps)]
        )
        bare = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "rq.cli",
                    "worker",
                    "--burst",
                    "--url",
                    run.redis.url,
                    "--worker-class",
                    "rq.SimpleWorker",
                    "-q",
                    "bare",
                ],
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for _ in range(processes)
        ]
        for process in bare:
            process.wait(timeout=600)
        for job in jobs:
            job.refresh()
        bare_seconds = (max(j.ended_at for j in jobs) - min(j.started_at for j in jobs)).total_seconds()
        bare_rate = steps / bare_seconds
    return {
        "steps": steps,
        "processes": processes,
        "ours_steps_per_s": round(ours, 1),
        "bare_rq_jobs_per_s": round(bare_rate, 1),
        "ratio": round(ours / bare_rate, 3),
        "target": 0.8,
    }


def chain_latency(quick: bool) -> dict[str, Any]:
    modules = 8 if quick else 30
    builds = 3 if quick else 10
    with deployment() as run:
        run.worker()
        client = run.app.test_client()
        workflow = client.post(
            "/api/v3/workflows",
            json={
                "title": "Bench",
                "topic": "t",
                "modules": [{"title": f"M{i}", "contactHours": 1} for i in range(modules)],
            },
            headers=run.auth,
        ).get_json()["data"]
        client.post(f"/api/v3/workflow/{workflow['id']}/step10", headers=run.auth)
        wait_until(
            lambda: (
                client.get(f"/api/v3/workflow/{workflow['id']}/step10/status", headers=run.auth).get_json()[
                    "data"
                ]["status"]
                == "complete"
            ),
            timeout=600,
            interval=0.2,
        )
        with run.app.app_context():
            rows = db.session.execute(
                select(Module.started_at, Module.completed_at)
                .where(Module.workflow_id == workflow["id"])
                .order_by(Module.position)
            ).all()
        gaps = [
            (b.started_at - a.completed_at).total_seconds() * 1000
            for a, b in zip(rows, rows[1:], strict=False)
        ]
        finals = []
        for _ in range(builds):
            build = _build(run, 2)
            with run.app.app_context():
                last = db.session.scalar(
                    select(func.max(BuildStep.completed_at)).where(BuildStep.build_id == build["id"])
                )
                done = db.session.scalar(select(Build.completed_at).where(Build.id == build["id"]))
            finals.append((done - last).total_seconds() * 1000)
    return {
        "module_to_module_ms": {
            "median": round(median(gaps), 1),
            "p95": round(percentile(gaps, 0.95), 1),
            "samples": len(gaps),
        },
        "last_step_to_completed_ms": {
            "median": round(median(finals), 1),
            "p95": round(percentile(finals, 0.95), 1),
            "samples": len(finals),
        },
        "target_median_ms": 50,
    }


def _load(
    url: str, session: requests.Session | None, headers: dict[str, str], seconds: float, threads: int = 8
) -> dict[str, float]:
    latencies: list[float] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def hammer() -> None:
        client = requests.Session()
        if session is not None:
            client.cookies.update(session.cookies)
        mine = []
        while time.monotonic() < deadline:
            started = time.perf_counter()
            response = client.get(url, headers=headers, timeout=30)
            mine.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, (url, response.status_code)
        with lock:
            latencies.extend(mine)

    workers = [threading.Thread(target=hammer) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return {
        "rps": round(len(latencies) / seconds, 1),
        "p50_ms": round(percentile(latencies, 0.5), 2),
        "p99_ms": round(percentile(latencies, 0.99), 2),
    }


def status_cost(quick: bool) -> dict[str, Any]:
    from tests.helpers.builds import path_with_build

    seconds = 3 if quick else 10
    results: dict[str, Any] = {}
    with deployment() as run:
        base = run.web()
        session = requests.Session()
        page = session.get(f"{base}/sign-in").text
        token = page.split('name="csrf_token" type="hidden" value="')[1].split('"')[0]
        session.post(
            f"{base}/sign-in", data={"email": "bench@example.com", "password": "bench", "csrf_token": token}
        )
        client = run.app.test_client()
        workflow = client.post(
            "/api/v3/workflows",
            json={"title": "W", "topic": "t", "modules": [{"title": f"M{i}"} for i in range(50)]},
            headers=run.auth,
        ).get_json()["data"]
        trivial = _load(f"{base}/healthz", None, {}, seconds)
        results["trivial"] = trivial
        for steps in (10, 10_000):
            path_id = path_with_build(run.app, steps)
            with run.app.app_context():
                build_id = db.session.scalar(select(Build.id).where(Build.path_id == path_id))
            results[f"{steps}_steps"] = {
                "api_job": _load(f"{base}/api/jobs/{build_id}", None, run.auth, seconds),
                "htmx_partial": _load(f"{base}/paths/{path_id}", session, {"HX-Request": "true"}, seconds),
                "step10_status": _load(
                    f"{base}/api/v3/workflow/{workflow['id']}/step10/status", None, run.auth, seconds
                ),
            }
    ratios = {}
    for name in ("api_job", "htmx_partial", "step10_status"):
        ratios[name] = {
            "vs_trivial_10k": round(results["10000_steps"][name]["rps"] / trivial["rps"], 3),
            "cost_10k_over_10": round(
                results["10_steps"][name]["rps"] / results["10000_steps"][name]["rps"], 3
            ),
        }
    return results | {"ratios": ratios, "targets": {"vs_trivial": 0.5, "cost_10k_over_10": 1.2}}


def parallelism(quick: bool) -> dict[str, Any]:
    concepts = 2 if quick else 6
    spans = {}
    for count in (1, 5):
        with deployment(
            GENERATOR_LATENCY_MS=200, JOB_CONCURRENCY_DECOMPOSE=2, JOB_CONCURRENCY_GENERATE_KU=count
        ) as run:
            run.worker()  # returns once its RQ workers have registered
            build = _build(run, concepts)
            steps, seconds = _span(run.app, build["id"], "knowledge-units")
            spans[count] = (steps, seconds)
    speedup = spans[1][1] / spans[5][1]
    return {
        "unit_steps": spans[1][0],
        "one_worker_s": round(spans[1][1], 2),
        "five_workers_s": round(spans[5][1], 2),
        "speedup": round(speedup, 2),
        "target": 4.0,
    }


def scale(quick: bool) -> dict[str, Any]:
    concepts = 40 if quick else 840
    with deployment(JOB_KEEP_COMPLETED_S=5, JOB_KEEP_FAILED_S=5) as run:
        redis = run.redis.client()
        base = run.web()
        worker = run.worker()  # returns once its RQ workers have registered
        before = redis.info("memory")["used_memory"]
        peak = [before]
        sampling = threading.Event()

        def sample() -> None:
            while not sampling.wait(0.5):
                peak.append(redis.info("memory")["used_memory"])

        threading.Thread(target=sample, daemon=True).start()
        started = time.monotonic()
        build = _build(run, concepts, timeout=7200)
        wall = time.monotonic() - started
        sampling.set()
        steps, _ = _span(run.app, build["id"])
        requests.get(f"{base}/healthz", timeout=10)
        web_rss = rss_peak_kb(run.groups[0].pid)
        worker_rss = rss_peak_kb(worker.pid)
        wait_until(lambda: not redis.keys("rq:job:*"), timeout=60, interval=0.5)
        wait_until(
            lambda: rq_registries_empty(redis), timeout=30, message="a recovery sweep to trim the registries"
        )
        after = redis.info("memory")["used_memory"]
    return {
        "knowledge_units": build["totalKnowledgeUnits"],
        "steps": steps,
        "wall_s": round(wall, 1),
        "steps_per_s": round(steps / wall, 1),
        "web_peak_rss_mb": round(web_rss / 1024, 1),
        "workers_peak_rss_mb": round(worker_rss / 1024, 1),
        "redis_used_memory_mb": {
            "before": round(before / 2**20, 2),
            "peak": round(max(peak) / 2**20, 2),
            "after_retention": round(after / 2**20, 2),
        },
    }


BENCHMARKS = {
    "pipeline_overhead": pipeline_overhead,
    "chain_latency": chain_latency,
    "status_cost": status_cost,
    "parallelism": parallelism,
    "scale": scale,
    "sse_viewers": sse_viewers,
    "push_pages": push_pages,
    "push_pages_many": push_pages_many,
    "density_in_flight": density.in_flight,
    "density_rate_limit": density.rate_limit,
    "fair_small_build_under_load": small_build_under_load,
    "fair_work_conservation": work_conservation,
    "fair_rate_limit_share": rate_limit_share,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, a few minutes in all (CI)")
    parser.add_argument("--only", choices=sorted(BENCHMARKS), action="append")
    parser.add_argument("--output", default=str(ROOT / "test-artifacts" / "bench.json"))
    args = parser.parse_args()
    results = {"quick": args.quick, "when": time.strftime("%Y-%m-%d %H:%M:%S")}
    for name in args.only or BENCHMARKS:
        started = time.monotonic()
        results[name] = BENCHMARKS[name](args.quick)
        print(
            f"\n== {name} ({time.monotonic() - started:.0f} s)\n{json.dumps(results[name], indent=2)}",
            flush=True,
        )
        if harness.FAILED_BUILDS:
            results.setdefault("failed_builds", {})[name] = list(harness.FAILED_BUILDS)
            harness.FAILED_BUILDS.clear()
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(results, indent=2))
    print(f"\nwritten to {args.output}")
    if "failed_builds" in results:
        print(f"\nFAILED: builds failed during {json.dumps(results['failed_builds'], indent=2)}", flush=True)
        raise SystemExit(1)


if __name__ == "__main__":
    main()
