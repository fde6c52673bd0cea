"""Redis behind Sentinels: a real master, replica and three Sentinels; the master is SIGKILLed
mid-build and mid-run, the Sentinels promote the replica, and nothing is lost or done twice."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from redis.exceptions import RedisError
from sqlalchemy import func, select

from app import create_app
from app.database import utcnow
from app.extensions import db
from app.jobs.limiter import wait_for_slot
from app.jobs.queues import connect_redis
from app.models import BuildStep, KnowledgeUnit, LessonPlan, Module
from chaos.checks import check_build
from tests.helpers import create_path, create_workflow, start_build, wait_for_build, wait_for_status
from tests.helpers.web import csrf_token, sign_in
from tests.services import DOWN_AFTER_MS, FAILOVER_TIMEOUT_MS, ProcessGroup, SentinelCluster, wait_until


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[SentinelCluster]:
    cluster = SentinelCluster(tmp_path / "sentinel-cluster")
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture
def service_env(
    service_env: dict[str, str], cluster: SentinelCluster, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """The shared test settings, with Redis found through the Sentinels instead of REDIS_URL."""
    for name, value in cluster.env.items():
        monkeypatch.setenv(name, value)
    return {**service_env, **cluster.env}


def _count(app: Flask, model, *where) -> int:  # type: ignore[no-untyped-def]
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model).where(*where))


def _first_completed_after(app: Flask, moment) -> float | None:  # type: ignore[no-untyped-def]
    """Seconds from `moment` to the first step (build step or module) started after it and
    completed: work that needed the new master to be dequeued."""
    with app.app_context():
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


def _assert_everything_exact(app: Flask, client, auth, build_id: str, workflow_id: str, modules: int) -> None:  # type: ignore[no-untyped-def]
    wait_for_build(client, auth, build_id, timeout=180)
    status = wait_for_status(client, auth, workflow_id, "complete", timeout=180)
    assert check_build(app, build_id) == []  # counters equal rows, no duplicates, one ending
    assert status["totalLessons"] == _count(app, LessonPlan) == modules
    assert _count(app, BuildStep, BuildStep.failed_attempts > 0) == 0, "a step failed because of the failover"
    assert _count(app, Module, Module.failed_attempts > 0) == 0, "a module failed because of the failover"


def _start_build_and_run(app: Flask, client, auth, workers, modules: int) -> tuple[str, str, ProcessGroup]:  # type: ignore[no-untyped-def]
    path_id = create_path(client, auth, concepts=3)
    workflow_id = create_workflow(client, auth, modules=modules, hours=1)
    worker = workers(GENERATOR_LATENCY_MS="400", JOB_RATE_LIMIT_MAX="1000")  # the limiter's window too
    build_id = start_build(client, auth, path_id)
    client.post(f"/api/v3/workflow/{workflow_id}/step10", headers=auth)
    wait_until(
        lambda: _count(app, KnowledgeUnit) > 0 and _count(app, LessonPlan) > 0,
        timeout=60,
        message="both pipelines to be under way",
    )
    return build_id, workflow_id, worker


@pytest.mark.slow
def test_a_failover_mid_build_and_mid_run_loses_and_duplicates_nothing(
    app, client, auth, workers, cluster, capsys
):
    build_id, workflow_id, _ = _start_build_and_run(app, client, auth, workers, modules=6)
    old_port = cluster.master.port

    killed_at = utcnow()
    cluster.master.process.kill()  # SIGKILL: no goodbye to the replica or the Sentinels
    promoted = cluster.wait_for_promotion(old_port)
    promoted_s = (utcnow() - killed_at).total_seconds()
    recovered_s = wait_until(
        lambda: _first_completed_after(app, killed_at), timeout=60, message="a step after the failover"
    )

    assert promoted is cluster.replica
    _assert_everything_exact(app, client, auth, build_id, workflow_id, modules=6)
    with capsys.disabled():
        print(
            f"\nfailover: down-after-milliseconds={DOWN_AFTER_MS}, failover-timeout={FAILOVER_TIMEOUT_MS}; "
            f"replica promoted {promoted_s:.1f}s after the master's SIGKILL, "
            f"first step completed after it {recovered_s:.1f}s after"
        )


@pytest.mark.slow
def test_a_promoted_replica_that_missed_writes_is_refilled_from_the_database(
    app, client, auth, workers, cluster
):
    """The replica is SIGKILLed and the build goes on without it; then the master dies and
    the replica comes back with only what it had, and the Sentinels promote it."""
    build_id, workflow_id, worker = _start_build_and_run(app, client, auth, workers, modules=10)
    cluster.replica.process.kill()
    cluster.replica.process.wait()
    replica_died = utcnow()
    wait_until(
        lambda: _count(app, BuildStep, BuildStep.completed_at > replica_died) >= 2,
        timeout=60,
        message="work written to the master alone",
    )
    cluster.master.client().set("written-after-the-replica-died", "1")
    old_port = cluster.master.port
    cluster.master.process.kill()
    cluster.replica.start()  # the same port and data directory: what it had when it died

    promoted = cluster.wait_for_promotion(old_port)

    assert promoted is cluster.replica
    assert promoted.client().get("written-after-the-replica-died") is None, "the replica is behind"
    _assert_everything_exact(app, client, auth, build_id, workflow_id, modules=10)
    swept = re.findall(r"a new Redis master \(\w+\); swept at once, queued (\d+) job", worker.output())
    assert len(swept) == 1, "one sweep, at once, when the master changed"
    assert int(swept[0]) >= 1, "the sweep queued again what the promoted replica never had"


@pytest.mark.slow
def test_readyz_answers_503_while_no_master_is_reachable_and_200_after_the_failover(client, cluster):
    assert client.get("/readyz").status_code == 200
    old_port = cluster.master.port
    cluster.master.process.kill()

    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["failing"] == ["redis"]
    cluster.wait_for_promotion(old_port)
    wait_until(lambda: client.get("/readyz").status_code == 200, timeout=30, message="/readyz to be 200")


@pytest.mark.slow
def test_a_pubsub_subscribed_before_a_failover_hears_the_new_master_after_one_connection_error(app, cluster):
    """The SSE stream's pattern: on a RedisError, wait and read again; redis-py reconnects
    through the Sentinels and subscribes again by itself."""
    redis = connect_redis(app.config, socket_timeout=2)
    pubsub = redis.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe("doorbell")
    old_port = cluster.master.port
    cluster.master.process.kill()
    cluster.wait_for_promotion(old_port)

    def _rang():  # type: ignore[no-untyped-def]
        try:
            redis.publish("doorbell", "ring")
            return pubsub.get_message(timeout=0.5)
        except RedisError:
            return None

    message = wait_until(_rang, timeout=30, message="the doorbell on the new master")
    assert message["data"] == b"ring"
    pubsub.close()


@pytest.mark.slow
def test_a_generator_call_waits_for_the_rate_limit_through_a_failover_instead_of_failing(app, cluster):
    config = {**app.config, "JOB_RATE_LIMIT_MAX": 1000}
    wait_for_slot(config)
    old_port = cluster.master.port
    cluster.master.process.kill()
    killed = time.monotonic()

    wait_for_slot(config)  # asks Redis while no master is reachable: waits, does not raise

    assert time.monotonic() - killed >= DOWN_AFTER_MS / 1000, "it answered before any promotion"
    assert cluster.master_port() != old_port


@pytest.mark.slow
def test_after_a_failover_metrics_the_cli_the_dashboard_and_the_sign_in_throttle_reach_the_new_master(
    app, client, cluster
):
    old_port = cluster.master.port
    cluster.master.process.kill()
    promoted = cluster.wait_for_promotion(old_port)
    wait_until(lambda: client.get("/readyz").status_code == 200, timeout=30, message="/readyz to be 200")

    metrics = client.get("/metrics").get_data(as_text=True)
    reconcile = app.test_cli_runner().invoke(args=["jobs", "reconcile"])
    wrong = client.post(
        "/sign-in",
        data={"email": "nobody@example.com", "password": "wrong", "csrf_token": csrf_token(client)},
    )
    sign_in(app, client, "admin@example.com", admin=True)
    promoted.client().sadd("rq:queues", "rq:queue:lesson-plans")  # RQ's list of queues, there only
    dashboard = client.get("/admin/rq/0/data/queues.json")

    assert 'cb_queue_depth{queue="lesson-plans"} 0.0' in metrics
    assert reconcile.exit_code == 0 and "queued 0 job(s)" in reconcile.output
    assert wrong.status_code == 422
    assert promoted.client().keys("*throttle*"), "the failed sign-in was counted on the new master"
    assert dashboard.status_code == 200 and "lesson-plans" in dashboard.get_data(as_text=True)


@pytest.mark.slow
def test_a_master_with_a_password_and_tls_behind_sentinels_with_a_password_is_followed_through_a_failover(
    tmp_path, database_url, monkeypatch
):
    secure = SentinelCluster(
        tmp_path / "secure-cluster", password="s3cret pass", tls=True, sentinel_password="sentinel pass"
    )
    secure.start()
    try:
        for name, value in {**secure.env, "DATABASE_URL": database_url}.items():
            monkeypatch.setenv(name, value)
        app = create_app({"TESTING": True, "SECRET_KEY": "test-secret"})
        client = app.test_client()
        assert client.get("/readyz").status_code == 200
        old_port = secure.master.port
        secure.master.process.kill()

        promoted = secure.wait_for_promotion(old_port)
        wait_until(lambda: client.get("/readyz").status_code == 200, timeout=30, message="/readyz to be 200")
        app.extensions["redis"].set("written-through-tls", "1")

        assert promoted.client().get("written-through-tls") == b"1"
    finally:
        secure.stop()
