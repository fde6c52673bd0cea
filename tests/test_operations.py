"""Operations with real processes: readiness, metrics, SIGTERM, FLUSHALL, alerts, retention."""

from __future__ import annotations

import json
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from prometheus_client.parser import text_string_to_metric_families
from rq import Queue
from sqlalchemy import func, select

from app.extensions import db
from app.models import Build, BuildEvent, BuildStep, KnowledgeUnit, LessonPlan, Module
from tests.helpers import create_path, create_workflow, start_build, wait_for_build, wait_for_status
from tests.helpers.builds import failing_sub_concept
from tests.helpers.workers import rq_registries_empty, rq_workers_of, wait_for_workers
from tests.services import free_port, wait_until


def test_healthz_answers_without_dependencies(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}


def test_readyz_turns_503_within_a_second_of_redis_stopping_and_200_when_it_returns(client, redis_server):
    ready = client.get("/readyz")
    assert ready.status_code == 200 and set(ready.get_json()["queues"]) >= {"build-path", "generate-ku"}

    redis_server.stop()
    try:
        started = time.monotonic()
        down = client.get("/readyz")
        elapsed = time.monotonic() - started
        assert down.status_code == 503 and down.get_json()["failing"] == ["redis"]
        assert elapsed < 1.0, f"readiness took {elapsed:.2f}s"
    finally:
        redis_server.start()
    assert client.get("/readyz").status_code == 200


def test_metrics_parse_and_queue_depth_is_the_real_queue_length(client, redis_server):
    queue = Queue("generate-ku", connection=redis_server.client())
    for n in range(3):
        queue.enqueue("builtins.print", n)

    families = {
        f.name: f for f in text_string_to_metric_families(client.get("/metrics").get_data(as_text=True))
    }

    depth = {s.labels["queue"]: s.value for s in families["cb_queue_depth"].samples}
    assert depth["generate-ku"] == queue.count == 3 and depth["build-path"] == 0
    assert {
        "cb_builds",
        "cb_step_duration_seconds",
        "cb_generator_calls",
        "cb_dead_letters",
        "cb_rate_limit_waits",
        "cb_failed_attempts",
    } <= set(families)


@pytest.mark.slow
def test_sigterm_during_a_long_step_puts_it_back_and_it_completes_elsewhere(app, client, auth, workers):
    workflow_id = create_workflow(client, auth, modules=1, hours=1)
    first = workers(GENERATOR_LATENCY_MS="20000", WORKER_SHUTDOWN_TIMEOUT_S="3")
    client.post(f"/api/v3/workflow/{workflow_id}/step10", headers=auth)

    def running() -> bool:
        with app.app_context():
            return db.session.scalar(select(Module.status)) == "running"

    wait_until(running, timeout=30, message="the module to run")
    started = time.monotonic()
    first.process.send_signal(signal.SIGTERM)
    first.process.wait(timeout=10)
    exited_after = time.monotonic() - started

    with app.app_context():
        module = db.session.scalar(select(Module))
        assert (module.status, module.failed_attempts) == ("queued", 0), "put back, not failed"
    assert exited_after < 4.5, f"the worker took {exited_after:.1f}s to exit"
    workers()
    status = wait_for_status(client, auth, workflow_id, "complete", timeout=60)
    assert status["totalLessons"] == 1


def _count(app, model, *where) -> int:  # type: ignore[no-untyped-def]
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model).where(*where))


@pytest.mark.slow
def test_flushall_mid_build_and_mid_run_both_complete_exactly(app, client, auth, workers, redis_server):
    path_id = create_path(client, auth, concepts=3)
    workflow_id = create_workflow(client, auth, modules=4, hours=1)
    workers(GENERATOR_LATENCY_MS="400")
    build_id = start_build(client, auth, path_id)
    client.post(f"/api/v3/workflow/{workflow_id}/step10", headers=auth)
    wait_until(
        lambda: _count(app, KnowledgeUnit) > 0 and _count(app, LessonPlan) > 0,
        timeout=60,
        message="both pipelines to be under way",
    )

    redis_server.client().flushall()

    build = wait_for_build(client, auth, build_id, timeout=120)
    status = wait_for_status(client, auth, workflow_id, "complete", timeout=120)
    assert build["totalKnowledgeUnits"] == _count(app, KnowledgeUnit)
    assert status["totalLessons"] == _count(app, LessonPlan) == 4
    with app.app_context():
        steps = db.session.scalars(select(BuildStep).where(BuildStep.build_id == build_id)).all()
        finals = _count(app, BuildEvent, BuildEvent.build_id == build_id, BuildEvent.type == "completed")
    assert all(s.status == "completed" for s in steps) and finals == 1


class Receiver(BaseHTTPRequestHandler):
    received: list[dict] = []  # type: ignore[type-arg]

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Receiver.received.append(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args) -> None:  # type: ignore[no-untyped-def]
        pass


@pytest.mark.slow
def test_the_webhook_gets_one_post_per_dead_letter_and_failed_build(app, client, auth, workers):
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Receiver.received = []
    try:
        url = f"http://127.0.0.1:{server.server_port}/hook"
        workers(GENERATOR_FAIL_ON=failing_sub_concept(), ALERT_WEBHOOK_URL=url)
        build_id = start_build(client, auth, create_path(client, auth, concepts=3))
        wait_for_build(client, auth, build_id, "failed")
        wait_until(lambda: len(Receiver.received) >= 2, timeout=20, message="two alerts")
        time.sleep(1)  # the behaviour under test: no third alert follows
    finally:
        server.shutdown()
    events = sorted(r["event"] for r in Receiver.received)
    assert events == ["build_failed", "dead_letter"]
    assert all(r["text"] and r["buildJobId"] == build_id for r in Receiver.received)


@pytest.mark.slow
def test_with_the_webhook_receiver_down_the_build_still_finishes(app, client, auth, workers):
    workers(
        GENERATOR_FAIL_ON=failing_sub_concept(),
        ALERT_WEBHOOK_URL=f"http://127.0.0.1:{free_port()}/",
        ALERT_TIMEOUT_S="1",
    )
    build_id = start_build(client, auth, create_path(client, auth, concepts=3))

    build = wait_for_build(client, auth, build_id, "failed", timeout=60)

    assert build["errorCount"] == 1


@pytest.mark.slow
def test_prune_removes_old_finished_builds_with_their_steps_and_keeps_the_rest(app, client, auth, workers):
    workers()
    old = wait_for_build(client, auth, start_build(client, auth, create_path(client, auth, concepts=1)))
    with app.app_context():
        db.session.execute(
            Build.__table__.update()
            .where(Build.id == old["id"])
            .values(
                completed_at=func.datetime("now", "-40 days")
                if db.engine.dialect.name == "sqlite"
                else func.now() - func.make_interval(0, 0, 0, 40)
            )
        )
        db.session.commit()
    recent = wait_for_build(client, auth, start_build(client, auth, create_path(client, auth, concepts=1)))
    runner = app.test_cli_runner()

    assert runner.invoke(args=["jobs", "prune", "--older-than", "thirty"]).exit_code != 0
    result = runner.invoke(args=["jobs", "prune", "--older-than", "30d"])

    assert result.exit_code == 0 and "1 builds" in result.output
    assert _count(app, Build) == 1 and _count(app, BuildStep, BuildStep.build_id == old["id"]) == 0
    assert _count(app, BuildEvent, BuildEvent.build_id == old["id"]) == 0
    assert _count(app, BuildStep, BuildStep.build_id == recent["id"]) > 0
    assert _count(app, KnowledgeUnit) > 0, "generated content is kept"


@pytest.mark.slow
def test_redis_memory_returns_near_its_start_once_retention_ends(app, client, auth, workers, redis_server):
    redis = redis_server.client()
    workers(JOB_KEEP_COMPLETED_S="2", JOB_KEEP_FAILED_S="2")
    app.config.update(JOB_KEEP_COMPLETED_S=2, JOB_KEEP_FAILED_S=2)
    wait_for_workers(redis, rq_workers_of(app.config))  # their registrations belong to the baseline
    before = redis.info("memory")["used_memory"]

    build = wait_for_build(client, auth, start_build(client, auth, create_path(client, auth, concepts=8)))
    peak_jobs = len(redis.keys("rq:job:*"))

    wait_until(lambda: not redis.keys("rq:job:*"), timeout=30, message="finished jobs to expire")
    wait_until(
        lambda: rq_registries_empty(redis), timeout=30, message="a recovery sweep to trim the registries"
    )
    after = redis.info("memory")["used_memory"]
    assert build["completedSubConcepts"] > 20 and peak_jobs > 20
    assert not redis.zcard("rq:finished:generate-ku")
    assert after - before < 200_000, f"Redis grew by {after - before} bytes"


@pytest.mark.slow
def test_redis_with_a_password_and_tls_runs_the_pipeline(app, auth, workers, tmp_path, monkeypatch):
    from app import create_app
    from tests.services import RedisServer

    secure = RedisServer(tmp_path / "secure-redis", password="s3cret pass", tls=True)
    secure.start()
    try:
        monkeypatch.setenv("REDIS_URL", secure.url)
        secure_app = create_app({"TESTING": True})
        client = secure_app.test_client()
        workflow_id = create_workflow(client, auth, modules=2, hours=1)
        workers(REDIS_URL=secure.url)

        client.post(f"/api/v3/workflow/{workflow_id}/step10", headers=auth)

        assert wait_for_status(client, auth, workflow_id, "complete", timeout=60)["totalLessons"] == 2
        assert client.get("/readyz").status_code == 200
        assert secure.client().llen("rq:queue:lesson-plans") == 0
    finally:
        secure.stop()
