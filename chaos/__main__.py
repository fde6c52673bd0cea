"""`python -m chaos [--quick] [--only NAME]`: every scenario against real processes, then the
database is checked. Exits 1 if any scenario breaks an invariant."""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import func, select

from app.database import utcnow
from app.extensions import db
from app.models import BuildStep, LearningPath, LessonPlan, Module, Workflow
from bench.harness import Deployment, deployment, start_path_build, wait_build
from chaos.checks import check_build
from chaos.two_users import two_users_in_flight
from tests.services import DOWN_AFTER_MS, FAILOVER_TIMEOUT_MS, SentinelCluster, wait_until

ROOT = Path(__file__).resolve().parent.parent


def _units_done(run: Deployment, build_id: str) -> int:
    with run.app.app_context():
        return db.session.scalar(
            select(func.count(BuildStep.id)).where(
                BuildStep.build_id == build_id,
                BuildStep.type == "knowledge-units",
                BuildStep.status == "completed",
            )
        )


def _worker_children(group) -> list[int]:  # type: ignore[no-untyped-def]
    from bench.harness import _children

    return _children(group.pid)


def sigkill_workers(quick: bool) -> dict[str, Any]:
    kills = 3 if quick else 20
    with deployment(GENERATOR_LATENCY_MS=300, JOB_MAX_WORKER_LOSSES=1000) as run:
        supervisor = run.worker()  # returns once its RQ workers have registered
        build_id = start_path_build(run, 4 if quick else 14, name="Chaos")
        done = 0
        while done < kills:
            time.sleep(random.uniform(0.3, 1.2))  # the chaos itself: kills at moments nobody chose
            children = _worker_children(supervisor)
            if children:
                os.kill(random.choice(children), signal.SIGKILL)
                done += 1
        wait_build(run.app.test_client(), run.auth, build_id, timeout=600)
        with run.app.app_context():
            losses = db.session.scalar(
                select(func.sum(BuildStep.worker_losses)).where(BuildStep.build_id == build_id)
            )
        return {
            "kills": kills,
            "steps_rerun_after_a_lost_worker": int(losses or 0),
            "problems": check_build(run.app, build_id),
        }


def _mid_build(settings: dict[str, Any], concepts: int, break_it) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    with deployment(GENERATOR_LATENCY_MS=300, **settings) as run:
        run.worker()  # returns once its RQ workers have registered
        build_id = start_path_build(run, concepts, name="Chaos")
        wait_until(lambda: _units_done(run, build_id) >= 2, timeout=120, interval=0.2)
        detail = break_it(run) or {}
        wait_build(run.app.test_client(), run.auth, build_id, timeout=600)
        return detail | {"problems": check_build(run.app, build_id)}


def redis_restart(quick: bool) -> dict[str, Any]:
    def restart(run: Deployment) -> dict[str, Any]:
        run.redis.stop()
        time.sleep(2)  # the outage itself: Redis stays away this long
        run.redis.start()
        return {"redis_down_s": 2}

    return _mid_build({}, 3 if quick else 8, restart)


def redis_flushall(quick: bool) -> dict[str, Any]:
    result = _mid_build({}, 3 if quick else 8, lambda run: run.redis.client().flushall() and None)
    with deployment(GENERATOR_LATENCY_MS=300) as run:  # and in the middle of a lesson-plan run
        run.worker()
        client = run.app.test_client()
        workflow = client.post(
            "/api/v3/workflows",
            json={
                "title": "W",
                "topic": "t",
                "modules": [{"title": f"M{i}", "contactHours": 1} for i in range(5)],
            },
            headers=run.auth,
        ).get_json()["data"]
        client.post(f"/api/v3/workflow/{workflow['id']}/step10", headers=run.auth)
        wait_until(  # mid-run: a module done and more to come
            lambda: (
                client.get(f"/api/v3/workflow/{workflow['id']}/step10/status", headers=run.auth).get_json()[
                    "data"
                ]["modulesGenerated"]
                >= 1
            ),
            timeout=120,
            interval=0.1,
        )
        run.redis.client().flushall()
        status = wait_until(
            lambda: (
                (
                    s := client.get(
                        f"/api/v3/workflow/{workflow['id']}/step10/status", headers=run.auth
                    ).get_json()["data"]
                )["status"]
                == "complete"
                and s
            ),
            timeout=300,
            interval=0.3,
        )
        with run.app.app_context():
            lessons = db.session.scalar(select(func.count(LessonPlan.id)))
        if not (status["totalLessons"] == lessons == 5):
            result["problems"].append(f"lesson-plan run: {status['totalLessons']} reported, {lessons} stored")
    return result


def _first_step_after(run: Deployment, moment) -> float | None:  # type: ignore[no-untyped-def]
    """Seconds from `moment` to the first step or module started after it and completed."""
    with run.app.app_context():
        ends = [
            db.session.scalar(
                select(func.min(model.completed_at)).where(
                    model.started_at > moment, model.status == "completed"
                )
            )
            for model in (BuildStep, Module)
        ]
    ends = [end for end in ends if end is not None]
    return (min(ends) - moment).total_seconds() if ends else None


def _fail_over(cluster: SentinelCluster, run: Deployment) -> dict[str, float]:
    """SIGKILL the master; time the promotion and the first step completed after it."""
    dying = cluster.master if cluster.master.port == cluster.master_port() else cluster.replica
    killed_at = utcnow()
    dying.process.kill()  # type: ignore[union-attr]
    dying.process.wait()  # type: ignore[union-attr]
    cluster.wait_for_promotion(dying.port)
    promoted_s = (utcnow() - killed_at).total_seconds()
    recovered_s = wait_until(lambda: _first_step_after(run, killed_at), timeout=120, interval=0.1)
    dying.process = None
    dying.start()  # back as a replica of the new master (the Sentinels reconfigure it)
    return {"promoted_s": round(promoted_s, 1), "first_step_after_s": round(recovered_s, 1)}


def sentinel_failover(quick: bool) -> dict[str, Any]:
    """Master, replica and three Sentinels; the master is SIGKILLed mid-build and mid-run."""
    cluster = SentinelCluster(Path(tempfile.mkdtemp(prefix="cb-sentinel-")))
    cluster.start()
    modules = 5 if quick else 12
    try:
        with deployment(GENERATOR_LATENCY_MS=300, **cluster.env) as run:
            run.worker()  # returns once its RQ workers have registered
            client = run.app.test_client()
            build_id = start_path_build(run, 3 if quick else 8, name="Chaos")
            workflow = client.post(
                "/api/v3/workflows",
                json={
                    "title": "W",
                    "topic": "t",
                    "modules": [{"title": f"M{i}", "contactHours": 1} for i in range(modules)],
                },
                headers=run.auth,
            ).get_json()["data"]
            client.post(f"/api/v3/workflow/{workflow['id']}/step10", headers=run.auth)
            wait_until(lambda: _units_done(run, build_id) >= 2, timeout=120, interval=0.2)
            failovers = [_fail_over(cluster, run) for _ in range(1 if quick else 2)]
            wait_build(client, run.auth, build_id, timeout=600)
            status_url = f"/api/v3/workflow/{workflow['id']}/step10/status"
            wait_until(
                lambda: client.get(status_url, headers=run.auth).get_json()["data"]["status"] == "complete",
                timeout=300,
                interval=0.3,
            )
            problems = check_build(run.app, build_id)
            with run.app.app_context():
                lessons = db.session.scalar(select(func.count(LessonPlan.id)))
                failed = db.session.scalar(
                    select(func.coalesce(func.sum(BuildStep.failed_attempts), 0))
                ) + db.session.scalar(select(func.coalesce(func.sum(Module.failed_attempts), 0)))
            if lessons != modules:
                problems.append(f"lesson-plan run: {lessons} lesson plans stored, {modules} expected")
            if failed:
                problems.append(f"{failed} failed attempts during the failover")
            return {
                "down_after_ms": DOWN_AFTER_MS,
                "failover_timeout_ms": FAILOVER_TIMEOUT_MS,
                "failovers": failovers,
                "problems": problems,
            }
    finally:
        cluster.stop()


def sigterm_all_workers(quick: bool) -> dict[str, Any]:
    def replace_workers(run: Deployment) -> dict[str, Any]:
        started = time.monotonic()
        for group in run.groups:
            group.process.send_signal(signal.SIGTERM)
        for group in run.groups:
            group.process.wait(timeout=30)
        exited = time.monotonic() - started
        run.worker()
        return {"workers_exited_s": round(exited, 1)}

    return _mid_build({"WORKER_SHUTDOWN_TIMEOUT_S": 3}, 3 if quick else 8, replace_workers)


def transient_failures(quick: bool) -> dict[str, Any]:
    settings = {
        "GENERATOR_FAILURE_RATE": 0.3,
        "JOB_MAX_ATTEMPTS": 12,
        "JOB_BACKOFF_TYPE": "fixed",
        "GENERATOR_LATENCY_MS": 50,
    }
    with deployment(**settings) as run:
        run.worker()
        build_id = start_path_build(run, 3 if quick else 10, name="Chaos")
        wait_build(run.app.test_client(), run.auth, build_id, timeout=900)
        with run.app.app_context():
            retried = db.session.scalar(
                select(func.sum(BuildStep.failed_attempts)).where(BuildStep.build_id == build_id)
            )
        return {"failed_attempts_retried": int(retried or 0), "problems": check_build(run.app, build_id)}


def permanent_failure(quick: bool) -> dict[str, Any]:
    with deployment(GENERATOR_FAIL_ON="Pitfalls: Foundations", JOB_MAX_ATTEMPTS=2) as run:
        run.worker()
        build_id = start_path_build(run, 3, name="Chaos")
        wait_build(run.app.test_client(), run.auth, build_id, timeout=300)
        problems = check_build(run.app, build_id, expected="failed")
        with run.app.app_context():
            failed = db.session.scalars(
                select(BuildStep.entity_name).where(
                    BuildStep.build_id == build_id, BuildStep.status == "failed"
                )
            ).all()
            others = db.session.scalar(
                select(func.count(BuildStep.id)).where(
                    BuildStep.build_id == build_id, BuildStep.status == "completed"
                )
            )
        if failed != ["Pitfalls: Foundations of statistics"]:
            problems.append(f"failed steps: {failed}")
        return {"failed_steps": failed, "completed_steps": others, "problems": problems}


def concurrent_starts(quick: bool) -> dict[str, Any]:
    with deployment() as run:
        base = run.web()
        client = run.app.test_client()
        path_id = client.post(
            "/api/learning-paths", json={"name": "Chaos", "topic": "t", "conceptCount": 2}, headers=run.auth
        ).get_json()["id"]
        workflow = client.post(
            "/api/v3/workflows",
            json={"title": "W", "topic": "t", "modules": [{"title": "A"}, {"title": "B"}]},
            headers=run.auth,
        ).get_json()["data"]
        with ThreadPoolExecutor(max_workers=50) as pool:
            builds = list(
                pool.map(
                    lambda _: (
                        requests.post(
                            f"{base}/api/jobs/build/{path_id}", headers=run.auth, timeout=60
                        ).status_code
                    ),
                    range(50),
                )
            )
            runs = list(
                pool.map(
                    lambda _: requests.post(
                        f"{base}/api/v3/workflow/{workflow['id']}/step10", headers=run.auth, timeout=60
                    ).json(),
                    range(50),
                )
            )
        queued = sum(r["data"]["jobsQueued"] for r in runs)
        problems = []
        if sorted(builds) != [202] + [409] * 49:
            problems.append(f"build starts answered {sorted(set(builds))}: {builds.count(202)} accepted")
        if queued != 1 or run.redis.client().llen("rq:queue:lesson-plans") != 1:
            problems.append(f"{queued} lesson-plan jobs queued by 50 starts")
        return {"build_202s": builds.count(202), "lesson_plan_jobs_queued": queued, "problems": problems}


def database_locked(quick: bool) -> dict[str, Any]:
    """SQLite: another process holds the write lock; PostgreSQL: the server restarts."""

    def lock(run: Deployment) -> dict[str, Any]:
        database = run.env["DATABASE_URL"]
        if not database.startswith("sqlite:///"):
            server_dir = os.environ.get("CHAOS_POSTGRES_DIR")
            if not server_dir:
                raise RuntimeError(
                    "PostgreSQL needs CHAOS_POSTGRES_DIR (the .ci/postgres directory) to restart it"
                )
            started = time.monotonic()
            subprocess.run(["bash", str(ROOT / ".ci" / "postgres"), "restart", server_dir], check=True)
            return {"postgres_restart_s": round(time.monotonic() - started, 1)}
        holder = sqlite3.connect(database.removeprefix("sqlite:///"), timeout=30)
        holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        time.sleep(4)  # the scenario: the write lock stays held this long
        holder.rollback()
        holder.close()
        return {"write_lock_held_s": 4}

    return _mid_build({}, 3 if quick else 6, lock)


def fuzz_api(quick: bool) -> dict[str, Any]:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    scalars = (
        st.none()
        | st.booleans()
        | st.integers(-(10**6), 10**6)
        | st.floats(allow_nan=True)
        | st.text(max_size=300)
    )
    values = st.recursive(
        scalars,
        lambda inner: (
            st.lists(inner, max_size=5)
            | st.dictionaries(
                st.sampled_from(
                    [
                        "title",
                        "topic",
                        "audience",
                        "modules",
                        "contactHours",
                        "name",
                        "conceptCount",
                        "description",
                        "fresh",
                        "x",
                    ]
                )
                | st.text(max_size=10),
                inner,
                max_size=6,
            )
        ),
        max_leaves=20,
    )
    routes = [
        "/api/v3/workflows",
        "/api/learning-paths",
        "/api/jobs/build/nope",
        "/api/v3/workflow/nope/step10",
    ]
    problems: list[str] = []
    with deployment() as run:
        client = run.app.test_client()

        def counts() -> tuple[int, int]:
            with run.app.app_context():
                return (
                    db.session.scalar(select(func.count(Workflow.id))),
                    db.session.scalar(select(func.count(LearningPath.id))),
                )

        @settings(max_examples=200 if quick else 2000, deadline=None, suppress_health_check=list(HealthCheck))
        @given(route=st.sampled_from(routes), body=values | st.binary(max_size=200))
        def attempt(route: str, body: Any) -> None:
            before = counts()
            data = body if isinstance(body, bytes) else json.dumps(body)
            response = client.post(route, data=data, headers={**run.auth, "Content-Type": "application/json"})
            if response.status_code >= 500:
                problems.append(f"{route} answered {response.status_code} to {data[:80]!r}")
            elif response.status_code >= 400 and counts() != before:
                problems.append(f"{route} refused {data[:80]!r} but wrote something")

        attempt()
    return {"examples": 200 if quick else 2000, "problems": problems[:10]}


SCENARIOS = {
    "sigkill_workers": sigkill_workers,
    "redis_restart": redis_restart,
    "redis_flushall": redis_flushall,
    "sentinel_failover": sentinel_failover,
    "sigterm_all_workers": sigterm_all_workers,
    "transient_failures": transient_failures,
    "permanent_failure": permanent_failure,
    "concurrent_starts": concurrent_starts,
    "database_locked": database_locked,
    "fuzz_api": fuzz_api,
    "two_users_in_flight": two_users_in_flight,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer kills and examples (CI)")
    parser.add_argument("--only", choices=sorted(SCENARIOS), action="append")
    parser.add_argument("--output", default=str(ROOT / "test-artifacts" / "chaos.json"))
    args = parser.parse_args()
    results: dict[str, Any] = {"quick": args.quick, "when": time.strftime("%Y-%m-%d %H:%M:%S")}
    failed = 0
    for name in args.only or SCENARIOS:
        started = time.monotonic()
        try:
            results[name] = SCENARIOS[name](args.quick)
        except Exception as exc:  # a scenario that crashes is a failed scenario, reported as such
            results[name] = {"problems": [f"scenario crashed: {type(exc).__name__}: {exc}"]}
        results[name]["seconds"] = round(time.monotonic() - started, 1)
        ok = not results[name]["problems"]
        failed += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {name:22} {json.dumps(results[name])}", flush=True)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(results, indent=2))
    print(f"{len(args.only or SCENARIOS) - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


threading.excepthook = lambda args: (
    None
    if args.exc_type is SystemExit
    else sys.__excepthook__(args.exc_type, args.exc_value, args.exc_traceback)
)

if __name__ == "__main__":
    main()
