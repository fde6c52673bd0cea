"""Health, readiness and metrics: no sign-in, nothing secret.

Metrics are collected at scrape time from Redis and the database (not kept in process
memory), so every gunicorn process answers the same and workers on other machines count too.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, current_app, jsonify
from flask.typing import ResponseReturnValue
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric
from redis import Redis
from redis.exceptions import RedisError
from rq import Queue
from sqlalchemy import case, func, select, text
from sqlalchemy.exc import SQLAlchemyError

from app.extensions import db
from app.jobs.queues import ALL_QUEUES, connect_redis
from app.models import Build, BuildStep, DeadLetter, GeneratorCall, LessonPlanRun, Module, WorkStatus

bp = Blueprint("ops", __name__)

DURATION_BUCKETS_S = (0.1, 0.5, 1, 5, 15, 60, 300, 900, 1800)


def _probe_redis() -> Redis:
    """A client that gives up within a second, so readiness answers fast when Redis is gone."""
    client = current_app.extensions.get("probe_redis")
    if client is None:
        client = connect_redis(current_app.config, socket_timeout=1)
        current_app.extensions["probe_redis"] = client
    return client


def queue_counts(redis: Redis) -> dict[str, dict[str, int]]:
    counts = {}
    for name in ALL_QUEUES:
        queue = Queue(name, connection=redis)
        counts[name] = {
            "waiting": queue.count,
            "active": queue.started_job_registry.count,
            "scheduled": queue.scheduled_job_registry.count,
            "failed": queue.failed_job_registry.count,
        }
    return counts


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    """The process is up (nothing else is checked)."""
    return {"status": "ok"}


@bp.get("/readyz")
def readyz() -> ResponseReturnValue:
    """Redis answers, the database answers; queue counts. 503 names what failed."""
    body: dict[str, Any] = {"status": "ok", "checks": {}}
    try:
        redis = _probe_redis()
        redis.ping()
        body["checks"]["redis"] = "ok"
        body["queues"] = queue_counts(redis)
    except RedisError as exc:
        body["checks"]["redis"] = f"unavailable: {type(exc).__name__}"
    try:
        db.session.execute(text("SELECT 1"))
        body["checks"]["database"] = "ok"
    except SQLAlchemyError as exc:
        db.session.rollback()
        body["checks"]["database"] = f"unavailable: {type(exc).__name__}"
    failing = [part for part, state in body["checks"].items() if state != "ok"]
    if failing:
        body["status"] = "unavailable"
        body["failing"] = failing
        return jsonify(body), 503
    return jsonify(body)


class ScrapeTimeCollector:
    """Reads the queues and the database each time Prometheus scrapes."""

    def collect(self) -> Iterator[Metric]:
        yield from self._queues()
        yield from self._database()

    def _queues(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily("cb_queue_depth", "Jobs waiting in each RQ queue", labels=["queue"])
        jobs = GaugeMetricFamily("cb_queue_jobs", "RQ jobs by queue and state", labels=["queue", "state"])
        try:
            for queue, counts in queue_counts(_probe_redis()).items():
                depth.add_metric([queue], counts["waiting"])
                for state, value in counts.items():
                    jobs.add_metric([queue, state], value)
        except RedisError:
            pass  # readiness reports it; metrics keep answering with what they have
        yield depth
        yield jobs

    def _database(self) -> Iterator[Metric]:
        builds = GaugeMetricFamily("cb_builds", "Builds by status", labels=["status"])
        for status, count in db.session.execute(select(Build.status, func.count()).group_by(Build.status)):
            builds.add_metric([status], count)
        yield builds
        runs = GaugeMetricFamily("cb_lesson_plan_runs", "Lesson-plan runs by status", labels=["status"])
        for status, count in db.session.execute(
            select(LessonPlanRun.status, func.count()).group_by(LessonPlanRun.status)
        ):
            runs.add_metric([status], count)
        yield runs
        yield from self._step_durations()
        retries = CounterMetricFamily(
            "cb_failed_attempts", "Attempts that failed (retried or final)", labels=["kind"]
        )
        retries.add_metric(
            ["step"],
            db.session.execute(select(func.coalesce(func.sum(BuildStep.failed_attempts), 0))).scalar_one(),
        )
        retries.add_metric(
            ["module"],
            db.session.execute(select(func.coalesce(func.sum(Module.failed_attempts), 0))).scalar_one(),
        )
        yield retries
        yield CounterMetricFamily(
            "cb_dead_letters",
            "Steps that failed for good",
            value=db.session.scalar(select(func.count(DeadLetter.id))),
        )
        yield from self._generator_calls()

    def _step_durations(self) -> Iterator[Metric]:
        seconds = BuildStep.duration_ms / 1000.0
        columns = [func.sum(case((seconds <= bound, 1), else_=0)) for bound in DURATION_BUCKETS_S]
        rows = db.session.execute(
            select(BuildStep.type, func.count(), func.coalesce(func.sum(seconds), 0), *columns)
            .where(BuildStep.status == WorkStatus.COMPLETED, BuildStep.duration_ms.is_not(None))
            .group_by(BuildStep.type)
        ).all()
        family = HistogramMetricFamily(
            "cb_step_duration_seconds", "Completed step durations", labels=["stage"]
        )
        for stage, count, total, *cumulative in rows:
            buckets = [(str(b), int(c or 0)) for b, c in zip(DURATION_BUCKETS_S, cumulative, strict=True)]
            family.add_metric([stage], buckets + [("+Inf", count)], sum_value=float(total))
        yield family

    def _generator_calls(self) -> Iterator[Metric]:
        calls = CounterMetricFamily("cb_generator_calls", "Generator calls", labels=["kind"])
        waits = CounterMetricFamily(
            "cb_rate_limit_waits", "Generator calls that waited for the rate limit", labels=["kind"]
        )
        waited = CounterMetricFamily(
            "cb_rate_limit_wait_seconds", "Time spent waiting for the rate limit", labels=["kind"]
        )
        rows = db.session.execute(
            select(
                GeneratorCall.kind,
                func.count(),
                func.sum(case((GeneratorCall.waited_ms > 0, 1), else_=0)),
                func.coalesce(func.sum(GeneratorCall.waited_ms), 0),
            ).group_by(GeneratorCall.kind)
        ).all()
        for kind, count, waiting, waited_ms in rows:
            calls.add_metric([kind], count)
            waits.add_metric([kind], int(waiting or 0))
            waited.add_metric([kind], float(waited_ms or 0) / 1000)
        yield calls
        yield waits
        yield waited


@bp.get("/metrics")
def metrics() -> ResponseReturnValue:
    """Prometheus text format, collected now from Redis and the database."""
    registry = CollectorRegistry()
    registry.register(ScrapeTimeCollector())
    return Response(generate_latest(registry), mimetype="text/plain; version=0.0.4")
