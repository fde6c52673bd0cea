"""Honest waiting: work that waits for the rate limit says so (API, pages, log) with its next
slot, the time-left estimate accounts for the limit, durations split waiting from working, and
the default limit holds back a provider, not the offline generator."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from playwright.sync_api import Page, expect, sync_playwright
from sqlalchemy import select, text

from app.admin.timeline import timeline_svg
from app.config import load_settings
from app.database import utcnow
from app.extensions import db
from app.jobs import claims
from app.jobs.limiter import wait_for_slot, waits_reported_to
from app.models import Build, BuildStep, GeneratorCall, LearningPath, Module, User, Workflow, WorkStatus
from app.pipelines.generation import RateLimitWaits, build_pipeline_generator
from app.pipelines.learning_paths.status import estimated_seconds_left
from app.pipelines.learning_paths.steps import generate_concepts
from app.pipelines.lesson_plans.status import estimated_seconds_left as module_seconds_left
from tests.fake_llm import FakeChatServer
from tests.helpers import build_of, create_path, create_workflow, start_build, status_of, wait_for_build
from tests.helpers.browser import CHROMIUM, CHROMIUM_ARGS, shot, sign_in
from tests.helpers.browser import create_path as create_path_on_page
from tests.helpers.llm import llm_settings
from tests.helpers.queries import QueryCounter
from tests.helpers.users import make_user
from tests.helpers.web import PASSWORD, csrf_token
from tests.services import start_gunicorn, start_worker, wait_until

TIGHT = {"JOB_RATE_LIMIT_MAX": "2", "JOB_RATE_LIMIT_DURATION": "2000"}  # one call a second
HX = {"HX-Request": "true"}
WAIT_LINE = "waiting for the AI provider's rate limit"


def _parse(timestamp: str) -> datetime:
    assert timestamp.endswith("Z"), timestamp
    return datetime.fromisoformat(timestamp[:-1])


def _sign_in_as(client: FlaskClient, email: str) -> None:
    response = client.post(
        "/sign-in", data={"email": email, "password": PASSWORD, "csrf_token": csrf_token(client)}
    )
    assert response.status_code == 302


# --- the limiter tells the row that waits --------------------------------------------------


def _claimed_module(app: Flask) -> claims.Claim:
    with app.app_context():
        owner = User(email="owner@example.com")
        owner.set_password(PASSWORD)
        db.session.add(owner)
        db.session.flush()
        workflow = Workflow(owner_id=owner.id, title="W", topic="t")
        workflow.modules = [Module(position=0, title="M", contact_hours=1, status=WorkStatus.QUEUED)]
        db.session.add(workflow)
        db.session.commit()
        work = claims.claim(Module, workflow.modules[0].id)
        assert work is not None
        return work


def test_a_row_waiting_for_a_slot_shows_its_next_slot_then_adds_up_its_wait(app):
    work = _claimed_module(app)
    with app.app_context():
        config = {
            **app.config,
            "JOB_RATE_LIMIT_MAX": 1,
            "JOB_RATE_LIMIT_DURATION": 1000,
            "JOB_RATE_LIMIT_MARGIN_MS": 0,
        }
        wait_for_slot(config)  # the one slot of this second is taken
        seen: list[tuple[datetime | None, bool]] = []

        def sleep_and_look(seconds: float) -> None:
            module = db.session.get(Module, work.row_id)
            db.session.refresh(module)
            seen.append((module.rate_limit_next_slot_at, module.waiting_for_rate_limit))
            time.sleep(seconds)

        asked = utcnow()
        waits = RateLimitWaits(work, "lesson-plans")
        with waits_reported_to(waits):
            wait_for_slot(config, sleep=sleep_and_look)
        waited_ms = (utcnow() - asked).total_seconds() * 1000
        waits.written()  # the wait's end is written beside the call it let go

        next_slot_at, waiting = seen[0]
        assert waiting and next_slot_at is not None
        assert asked < next_slot_at <= asked + timedelta(seconds=1.1)
        module = db.session.get(Module, work.row_id)
        db.session.refresh(module)
        assert module.rate_limit_next_slot_at is None and not module.waiting_for_rate_limit
        assert 0.5 * waited_ms <= module.rate_limit_waited_ms <= waited_ms + 50


def test_one_wait_logs_one_line_however_often_it_wakes(app, caplog):
    work = _claimed_module(app)
    with app.app_context():
        config = {
            **app.config,
            "JOB_RATE_LIMIT_MAX": 1,
            "JOB_RATE_LIMIT_DURATION": 1000,
            "JOB_RATE_LIMIT_MARGIN_MS": 0,
        }
        wait_for_slot(config)
        naps: list[float] = []

        def nap(seconds: float) -> None:  # wakes early, so the limiter checks and sleeps again
            naps.append(seconds)
            time.sleep(seconds / 4)

        with caplog.at_level(logging.INFO), waits_reported_to(RateLimitWaits(work, "lesson-plans")):
            wait_for_slot(config, sleep=nap)

    assert len(naps) >= 3
    assert sum(WAIT_LINE in record.getMessage() for record in caplog.records) == 1


def test_a_wait_that_cannot_be_recorded_does_not_fail_the_call(app, caplog):
    work = _claimed_module(app)
    with app.app_context():
        config = {
            **app.config,
            "JOB_RATE_LIMIT_MAX": 1,
            "JOB_RATE_LIMIT_DURATION": 1000,
            "JOB_RATE_LIMIT_MARGIN_MS": 0,
        }
        wait_for_slot(config)
        with db.engine.begin() as conn:  # the row's table is gone for a moment: every write fails
            conn.execute(text("ALTER TABLE modules RENAME TO modules_away"))
        try:
            waits = RateLimitWaits(work, "lesson-plans")
            with caplog.at_level(logging.WARNING), waits_reported_to(waits):
                admitted = wait_for_slot(config)
                waits.written()
        finally:
            with db.engine.begin() as conn:
                conn.execute(text("ALTER TABLE modules_away RENAME TO modules"))

    assert admitted > 0
    assert any("could not record a wait" in record.getMessage() for record in caplog.records)


def test_a_new_attempt_starts_with_no_wait_of_its_own(app):
    work = _claimed_module(app)
    with app.app_context():
        module = db.session.get(Module, work.row_id)
        module.rate_limit_waited_ms, module.rate_limit_next_slot_at = 1234, utcnow()
        module.status = WorkStatus.RETRYING
        db.session.commit()

        assert claims.claim(Module, work.row_id) is not None

        db.session.refresh(module)
        assert (module.rate_limit_waited_ms, module.rate_limit_next_slot_at) == (0, None)


def test_a_providers_own_waits_are_kept_on_its_step_and_apart_from_work_in_its_call_record(app, client, auth):
    with FakeChatServer() as fake:
        app.config.update(llm_settings(fake), OPENAI_TIMEOUT_S=1.0, OPENAI_COOLDOWN_S=0.2)
        app.config.update(JOB_RATE_LIMIT_MAX=1, JOB_RATE_LIMIT_DURATION=3000)
        build_id = start_build(client, auth, create_path(client, auth, concepts=2))
        with app.app_context():
            (step_id,) = db.session.scalars(select(BuildStep.id).where(BuildStep.build_id == build_id))
            # The first provider generator of a process imports openai (seconds): done here, so
            # the slot taken next is still taken when the step asks for one.
            build_pipeline_generator(app.config)
            wait_for_slot(app.config)  # the window's one slot is taken

            generate_concepts(step_id)  # the openai generator waits inside its call

            step = db.session.get(BuildStep, step_id)
            call = db.session.scalar(select(GeneratorCall).where(GeneratorCall.step_id == step_id))

    assert step.status == "completed" and len(fake.log) == 1
    assert step.rate_limit_waited_ms >= 500 and step.work_ms == step.duration_ms - step.rate_limit_waited_ms
    assert abs(call.waited_ms - step.rate_limit_waited_ms) < 50
    assert call.duration_ms < step.duration_ms - 400, "the call's duration is its work alone"


@contextmanager
def _step_row_locked(app: Flask, step_id: int) -> Iterator[None]:
    """Another connection holds a lock the step's own writes wait for: SQLite's write lock, or on
    PostgreSQL the step's row."""
    with app.app_context():
        engine = db.engine
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.begin()
            conn.execute(select(BuildStep.id).where(BuildStep.id == step_id).with_for_update())
        try:
            yield
        finally:
            conn.rollback()


def test_a_call_let_go_by_the_limiter_goes_out_while_its_wait_is_still_being_written(app, client, auth):
    """The write that ends a wait waited on a busy database before the call went out, so an
    admitted call could reach the provider a long moment late, beside calls admitted after it."""
    with FakeChatServer() as fake:
        app.config.update(llm_settings(fake), OPENAI_TIMEOUT_S=5.0, OPENAI_COOLDOWN_S=0.2)
        app.config.update(JOB_RATE_LIMIT_MAX=1, JOB_RATE_LIMIT_DURATION=1500, JOB_RATE_LIMIT_MARGIN_MS=0)
        build_id = start_build(client, auth, create_path(client, auth, concepts=2))
        with app.app_context():
            (step_id,) = db.session.scalars(select(BuildStep.id).where(BuildStep.build_id == build_id))
            build_pipeline_generator(app.config)  # openai imported before the slot is taken
            wait_for_slot(app.config)  # the window's one slot is taken

        def run_step() -> None:
            with app.app_context():
                generate_concepts(step_id)

        def showing_its_wait() -> bool:
            with app.app_context():
                return (
                    db.session.scalar(
                        select(BuildStep.rate_limit_next_slot_at).where(BuildStep.id == step_id)
                    )
                    is not None
                )

        step_thread = threading.Thread(target=run_step, daemon=True)
        step_thread.start()
        wait_until(showing_its_wait, timeout=10, message="the step to say it waits")
        with _step_row_locked(app, step_id):
            wait_until(
                lambda: fake.log, timeout=5, message="the call to reach the provider while the row is locked"
            )
        step_thread.join(30)

        with app.app_context():
            step = db.session.get(BuildStep, step_id)
            assert step.status == "completed" and len(fake.log) == 1
            assert step.rate_limit_waited_ms >= 500 and step.rate_limit_next_slot_at is None


# --- a build under a tight limit, with real workers ----------------------------------------


@pytest.mark.slow
def test_a_build_under_a_tight_limit_shows_waiting_steps_and_an_estimate_the_limit_allows(
    app, client, auth, workers
):
    app.config.update(JOB_RATE_LIMIT_MAX=2, JOB_RATE_LIMIT_DURATION=2000)  # the API's estimate knows it
    worker = workers(**TIGHT)
    path_id = create_path(client, auth, concepts=3)
    build_id = start_build(client, auth, path_id)
    samples: list[tuple[float, dict]] = []  # type: ignore[type-arg]
    waiting_steps: list[dict] = []  # type: ignore[type-arg]

    def sample() -> bool:
        build = build_of(client, auth, build_id)
        samples.append((time.monotonic(), build))
        if build["waitingForRateLimit"] and not waiting_steps:
            steps = client.get(f"/api/jobs/{build_id}/steps?status=running", headers=auth).get_json()["data"]
            waiting_steps.extend(s for s in steps if s["waitingForRateLimit"])
        return build["status"] == "completed"

    wait_until(sample, timeout=120, interval=0.25, message="the build to complete")
    finished = time.monotonic()

    waiting = [b for _, b in samples if b["waitingForRateLimit"]]
    assert waiting, "some poll should have seen the build waiting for the limit"
    assert all(b["stepsWaitingForRateLimit"] >= 1 and b["rateLimitNextSlotAt"] for b in waiting)
    assert waiting_steps and all(_parse(s["rateLimitNextSlotAt"]) for s in waiting_steps)
    for at, build in samples[:-1]:
        if build["totalConcepts"]:
            owed = (
                build["totalConcepts"]
                - build["completedConcepts"]
                + build["totalSubConcepts"]
                - build["completedSubConcepts"]
            )
            left = build["estimatedSecondsLeft"]
            assert left is not None and left >= owed / 1.0, (build, owed)
            assert not (left <= 1 and finished - at > 5), (
                f"'{left} s left' {finished - at:.1f} s before the end"
            )
    steps = client.get(f"/api/jobs/{build_id}/steps?limit=100", headers=auth).get_json()["data"]
    assert not any(s["waitingForRateLimit"] or s["rateLimitNextSlotAt"] for s in steps)
    waited = [s for s in steps if s["waitMs"] > 0]
    assert waited, "under one call a second, some steps must have waited"
    assert all(s["workMs"] == s["durationMs"] - s["waitMs"] for s in steps if s["status"] == "completed")
    assert worker.output().count(WAIT_LINE) == len(waited), "one log line per wait"


@pytest.mark.slow
def test_the_path_page_says_the_build_waits_for_the_rate_limit(app, client, workers):
    headers = make_user(app, "ada@example.com")
    _sign_in_as(client, "ada@example.com")
    workers(JOB_RATE_LIMIT_MAX="1", JOB_RATE_LIMIT_DURATION="3000")
    path_id = create_path(client, headers, concepts=2)
    start_build(client, headers, path_id)

    def page_says_waiting() -> str | None:
        body = client.get(f"/paths/{path_id}", headers=HX).get_data(as_text=True)
        return body if "Waiting for the AI provider" in body else None

    body = wait_until(page_says_waiting, timeout=60, interval=0.2, message="the page to say it waits")
    # A 3 s window kept 100 ms longer (JOB_RATE_LIMIT_MARGIN_MS): a wait begun just after a call
    # is up to 3.1 s, which reads "~4 s" once rounded.
    assert re.search(r"Waiting for the AI provider's rate limit — next call in ~[1234] s", body), body


@pytest.mark.slow
def test_a_module_waiting_for_the_limit_says_so_in_the_status_and_on_the_page(app, client, workers):
    headers = make_user(app, "ada@example.com")
    _sign_in_as(client, "ada@example.com")
    app.config.update(JOB_RATE_LIMIT_MAX=1, JOB_RATE_LIMIT_DURATION=3000)
    workers(JOB_RATE_LIMIT_MAX="1", JOB_RATE_LIMIT_DURATION="3000")
    workflow_id = create_workflow(client, headers, modules=3)
    client.post(f"/api/v3/workflow/{workflow_id}/step10", headers=headers)

    status = wait_until(
        lambda: (s := status_of(client, headers, workflow_id))["waitingForRateLimit"] and s,
        timeout=60,
        interval=0.1,
        message="a module to wait for the limit",
    )
    body = client.get(f"/workflows/{workflow_id}", headers=HX).get_data(as_text=True)

    (waiting,) = [d for d in status["jobs"]["details"] if d["waitingForRateLimit"]]
    assert waiting["state"] == "active" and waiting["rateLimitNextSlotAt"] == status["rateLimitNextSlotAt"]
    assert _parse(status["rateLimitNextSlotAt"]) <= datetime.now(UTC).replace(tzinfo=None) + timedelta(
        seconds=3.5
    )
    assert status["estimatedSecondsLeft"] >= 3 * (3 - status["modulesGenerated"]), status
    if "Waiting for the AI provider" in body:  # the wait may have ended between the two requests
        assert re.search(r"next call in ~[1-4] s", body), body
    final = wait_until(
        lambda: (s := status_of(client, headers, workflow_id))["status"] == "complete" and s,
        timeout=60,
        interval=0.2,
        message="the run to complete",
    )
    assert not final["waitingForRateLimit"] and final["estimatedSecondsLeft"] is None
    assert sum(d["waitMs"] > 0 for d in final["jobs"]["details"]) >= 2


# --- estimates, with a limit and without ---------------------------------------------------


def _build_row(app: Flask, **counters: int) -> str:
    with app.app_context():
        owner = User(email="owner@example.com")
        owner.set_password(PASSWORD)
        db.session.add(owner)
        db.session.flush()
        path = LearningPath(owner_id=owner.id, name="P", topic="t", concept_count=3)
        db.session.add(path)
        db.session.flush()
        build = Build(path_id=path.id, status="processing", **counters)
        db.session.add(build)
        db.session.commit()
        return build.id


def _estimate(app: Flask, build_id: str, **settings: int) -> int | None:
    app.config.update(settings)
    with app.app_context():
        return estimated_seconds_left(db.session.get(Build, build_id))


def test_fast_early_steps_do_not_make_the_estimate_say_one_second_under_the_limit(app):
    # Three concepts broken down and ten of twelve sub-concepts done, each in 10 ms: the window's
    # free calls went fast, but the two calls left wait for the limit.
    build_id = _build_row(
        app,
        total_concepts=3,
        completed_concepts=3,
        total_sub_concepts=12,
        completed_sub_concepts=10,
        sub_concepts_ms=30,
        knowledge_units_ms=100,
    )

    assert _estimate(app, build_id, JOB_RATE_LIMIT_MAX=0) == 1, "without a limit: the measured 1 s"
    assert _estimate(app, build_id, JOB_RATE_LIMIT_MAX=10, JOB_RATE_LIMIT_DURATION=60_000) == 12


def test_a_build_before_its_concepts_is_estimated_from_the_limit(app):
    build_id = _build_row(app)

    assert _estimate(app, build_id, JOB_RATE_LIMIT_MAX=0) is None
    # The concepts call, then at least a decomposition and one unit step per concept: 7 calls.
    assert _estimate(app, build_id, JOB_RATE_LIMIT_MAX=10, JOB_RATE_LIMIT_DURATION=60_000) == 42


def _waiting_build(app: Flask, client: FlaskClient, auth: dict[str, str], slot_in_s: float) -> str:
    """A processing build whose concepts are broken down, six units steps owed, one of them
    running and waiting for a slot `slot_in_s` seconds away (as the limiter marks it)."""
    path_id = create_path(client, auth, concepts=3)
    with app.app_context():
        build = Build(
            path_id=path_id,
            status="processing",
            triggered_by=db.session.scalar(select(User.id)),
            total_concepts=3,
            completed_concepts=3,
            total_sub_concepts=6,
            sub_concepts_ms=30,
        )
        db.session.add(build)
        db.session.flush()
        db.session.add(
            BuildStep(
                build_id=build.id,
                type="knowledge-units",
                status=WorkStatus.RUNNING,
                rate_limit_next_slot_at=utcnow() + timedelta(seconds=slot_in_s),
            )
        )
        db.session.commit()
        return build.id


def test_while_every_call_waits_for_the_limit_the_estimate_counts_down_to_the_next_slot(app, client, auth):
    app.config.update(JOB_RATE_LIMIT_MAX=10, JOB_RATE_LIMIT_DURATION=60_000)  # one call every 6 s
    build_id = _waiting_build(app, client, auth, slot_in_s=20)
    first = build_of(client, auth, build_id)
    assert first["waitingForRateLimit"] and first["completedSubConcepts"] == 0
    # The slot in 20 s, then the five other owed calls at 6 s each.
    assert 48 <= first["estimatedSecondsLeft"] <= 50

    later = wait_until(
        lambda: (
            (b := build_of(client, auth, build_id))["estimatedSecondsLeft"] < first["estimatedSecondsLeft"]
            and b
        ),
        timeout=10,
        interval=0.5,
        message="the estimate to count down while nothing completes",
    )

    assert later["completedSubConcepts"] == 0 and later["stepsWaitingForRateLimit"] == 1
    assert later["estimatedSecondsLeft"] >= 6 * 6 - 60, "never below owed ÷ rate - one window"


def test_a_slot_long_overdue_still_leaves_the_owed_calls_at_the_limits_pace(app, client, auth):
    app.config.update(JOB_RATE_LIMIT_MAX=10, JOB_RATE_LIMIT_DURATION=60_000)
    build_id = _waiting_build(app, client, auth, slot_in_s=-30)

    # ~1 s to the slot (as the page says it), then five calls at 6 s: never "1 s left".
    assert build_of(client, auth, build_id)["estimatedSecondsLeft"] == 31


def test_a_list_of_pending_builds_costs_the_same_queries_for_2_and_12(app, client, auth):
    app.config.update(JOB_RATE_LIMIT_MAX=10, JOB_RATE_LIMIT_DURATION=60_000)

    def pending_builds(count: int) -> None:
        for _ in range(count):
            path_id = create_path(client, auth, concepts=4)
            with app.app_context():
                owner = db.session.scalar(select(User.id))
                db.session.add(Build(path_id=path_id, status="pending", triggered_by=owner))
                db.session.commit()

    def queries() -> int:
        with QueryCounter(app) as counter:
            listed = client.get("/api/jobs?limit=100", headers=auth).get_json()
        assert all(b["estimatedSecondsLeft"] == 9 * 6 for b in listed), "1 + 2 × 4 calls at 6 s"
        return counter.count

    pending_builds(2)
    queries()  # warm up: a token's first use records it
    few = queries()
    pending_builds(10)

    assert queries() == few


def test_modules_left_are_estimated_no_faster_than_the_limit(app):
    app.config.update(JOB_RATE_LIMIT_MAX=2, JOB_RATE_LIMIT_DURATION=60_000, ESTIMATED_MODULE_MINUTES=0.01)
    with app.app_context():
        modules = [
            Module(position=i, title="M", contact_hours=1, status=WorkStatus.PENDING) for i in range(4)
        ]

        assert module_seconds_left(modules) == 120  # 4 calls at 2 a minute, not 4 × 0.6 s


def _modules_of_a_run(app: Flask, *states: tuple[str, int | None, float | None]) -> tuple[str, datetime]:
    """A workflow whose run started 10 s ago; each module (status, duration_ms, seconds since it
    completed or started): a duration on a pending module is left from an earlier run."""
    with app.app_context():
        owner = User(email="owner@example.com")
        owner.set_password(PASSWORD)
        db.session.add(owner)
        db.session.flush()
        now = utcnow()
        workflow = Workflow(owner_id=owner.id, title="W", topic="t")
        for i, (status, duration_ms, ago_s) in enumerate(states):
            at = now - timedelta(seconds=ago_s) if ago_s is not None else None
            workflow.modules.append(
                Module(
                    position=i,
                    title=f"M{i}",
                    contact_hours=1,
                    status=status,
                    duration_ms=duration_ms,
                    completed_at=at if status == WorkStatus.COMPLETED else None,
                    started_at=at if status == WorkStatus.RUNNING else None,
                )
            )
        db.session.add(workflow)
        db.session.commit()
        return workflow.id, now - timedelta(seconds=10)


def _module_estimate(app: Flask, workflow_id: str, since: datetime | None) -> int:
    with app.app_context():
        modules = db.session.scalars(
            select(Module).where(Module.workflow_id == workflow_id).order_by(Module.position)
        )
        return module_seconds_left(list(modules), since)


def test_after_one_module_the_lesson_plan_estimate_follows_its_measured_time(app):
    app.config.update(JOB_RATE_LIMIT_MAX=0, ESTIMATED_MODULE_MINUTES=2)
    # Module 1 took 2 s in this run; the others carry 60 s from an earlier, slower run.
    workflow_id, run_started = _modules_of_a_run(
        app,
        (WorkStatus.COMPLETED, 2000, 5),
        (WorkStatus.PENDING, 60_000, None),
        (WorkStatus.PENDING, 60_000, None),
        (WorkStatus.PENDING, 60_000, None),
    )

    assert _module_estimate(app, workflow_id, run_started) == 6, "3 modules left at this run's 2 s"


def test_the_running_module_counts_only_what_it_has_left(app):
    app.config.update(JOB_RATE_LIMIT_MAX=0)
    workflow_id, run_started = _modules_of_a_run(
        app, (WorkStatus.COMPLETED, 4000, 5), (WorkStatus.RUNNING, None, 3), (WorkStatus.PENDING, None, None)
    )

    assert _module_estimate(app, workflow_id, run_started) in (5, 6), "4 s + 4 s, less the 3 s spent"


def test_a_first_run_is_estimated_from_recent_modules_not_the_fixed_guess(app):
    app.config.update(JOB_RATE_LIMIT_MAX=0, ESTIMATED_MODULE_MINUTES=2)
    _modules_of_a_run(app, (WorkStatus.COMPLETED, 3000, 50), (WorkStatus.COMPLETED, 5000, 40))
    with app.app_context():
        owner = db.session.scalar(select(User.id))
        workflow = Workflow(owner_id=owner, title="New", topic="t")
        workflow.modules = [Module(position=i, title=f"N{i}", contact_hours=1) for i in range(3)]
        db.session.add(workflow)
        db.session.commit()
        new_id = workflow.id

    assert _module_estimate(app, new_id, None) == 12, "3 modules at the recent 4 s, not 3 × 2 min"


# --- durations: waiting and working --------------------------------------------------------


def _finished_step(start: datetime, duration_ms: int, waited_ms: int) -> BuildStep:
    return BuildStep(
        type="knowledge-units",
        entity_name="Means",
        status="completed",
        started_at=start,
        completed_at=start + timedelta(milliseconds=duration_ms),
        duration_ms=duration_ms,
        rate_limit_waited_ms=waited_ms,
    )


def test_a_short_builds_timeline_reads_in_milliseconds():
    """A new user's 0.1 s build read '0.0 s' on five of its six ticks."""
    start = datetime(2026, 11, 25, 12, 0, 0)
    svg = timeline_svg(
        [_finished_step(start, 60, 0), _finished_step(start + timedelta(milliseconds=60), 40, 0)]
    )

    ticks = re.findall(r'text-anchor="middle">([^<]+)</text>', svg)
    assert ticks == ["0 ms", "20 ms", "40 ms", "60 ms", "80 ms", "100 ms"]


def test_the_timeline_draws_the_wait_hatched_before_the_work():
    start = datetime(2026, 11, 25, 12, 0, 0)
    waited = _finished_step(start, 4000, 3000)
    worked = _finished_step(start + timedelta(seconds=4), 1000, 0)

    svg = timeline_svg([waited, worked])

    (wait,) = re.findall(r'<rect class="wait" x="([\d.]+)" y="\d+" width="([\d.]+)"', svg)
    works = re.findall(r'<rect class="work" x="([\d.]+)" y="\d+" width="([\d.]+)"', svg)
    assert 'fill="url(#wait-hatch)"' in svg and '<pattern id="wait-hatch"' in svg
    # 880 px for 5 s: the wait is 3 s (528 px) and the first step's work starts where it ends.
    assert abs(float(wait[1]) - 528) < 1 and abs(float(works[0][0]) - float(wait[0]) - 528) < 1
    assert "3.0 s waiting for the rate limit, 1.0 s working" in svg


def _running_step(start: datetime, waiting: bool, waited_ms: int = 0) -> BuildStep:
    return BuildStep(
        type="knowledge-units",
        entity_name="Medians",
        status="running",
        started_at=start,
        rate_limit_waited_ms=waited_ms,
        rate_limit_next_slot_at=start + timedelta(seconds=30) if waiting else None,
    )


def test_the_timeline_hatches_the_wait_of_a_step_still_running_up_to_now():
    start = datetime(2026, 11, 25, 12, 0, 0)
    finished = _finished_step(start, 1000, 0)
    waiting = _running_step(start + timedelta(seconds=1), waiting=True)

    svg = timeline_svg([finished, waiting], now=start + timedelta(seconds=5))

    (wait,) = re.findall(r'<rect class="wait" x="([\d.]+)" y="\d+" width="([\d.]+)"', svg)
    # 880 px for 5 s: the running step has waited from 1 s to now (5 s), 704 px, all hatched.
    assert abs(float(wait[0]) - (40 + 176)) < 1 and abs(float(wait[1]) - 704) < 1
    assert "running · 4.0 s so far (4.0 s waiting for the rate limit, 0.0 s working)" in svg
    assert "2 steps" in svg


def test_a_running_step_no_longer_waiting_keeps_its_wait_hatched_and_its_work_solid():
    start = datetime(2026, 11, 25, 12, 0, 0)
    working = _running_step(start, waiting=False, waited_ms=3000)

    svg = timeline_svg([working], now=start + timedelta(seconds=4))

    (wait,) = re.findall(r'<rect class="wait" x="([\d.]+)" y="\d+" width="([\d.]+)"', svg)
    (work,) = re.findall(r'<rect class="work" x="([\d.]+)" y="\d+" width="([\d.]+)"', svg)
    assert abs(float(wait[1]) - 660) < 1 and abs(float(work[1]) - 220) < 1  # 3 s of 4 s waited


def test_the_admin_step_tree_splits_waiting_from_working_and_shows_a_waiting_step(app, client):
    make_user(app, "root@example.com", admin=True)
    _sign_in_as(client, "root@example.com")
    build_id = _build_row(app, total_concepts=1)
    with app.app_context():
        finished = _finished_step(datetime(2026, 11, 25, 12, 0, 0), 4000, 3000)
        finished.build_id = build_id
        db.session.add(finished)
        db.session.add(
            BuildStep(
                build_id=build_id,
                type="knowledge-units",
                entity_id=2,
                entity_name="Medians",
                status="running",
                started_at=utcnow(),
                rate_limit_next_slot_at=utcnow() + timedelta(seconds=12),
            )
        )
        db.session.commit()

    body = client.get(f"/admin/builds/{build_id}").get_data(as_text=True)

    assert "3 s waiting for the rate limit, 1 s working" in body
    assert "waiting for the AI provider's rate limit — next slot at" in body
    assert "1 running step waiting for the AI provider" in body


def test_the_steps_api_splits_waiting_from_working(app, client, auth):
    path_id = create_path(client, auth, concepts=1)
    build_id = _build_row(app)
    with app.app_context():
        build = db.session.get(Build, build_id)
        build.path_id = path_id
        step = _finished_step(datetime(2026, 11, 25, 12, 0, 0), 4000, 3000)
        step.build_id = build_id
        db.session.add(step)
        db.session.commit()

    (shown,) = client.get(f"/api/jobs/{build_id}/steps", headers=auth).get_json()["data"]

    assert (shown["durationMs"], shown["waitMs"], shown["workMs"]) == (4000, 3000, 1000)
    assert (shown["waitingForRateLimit"], shown["rateLimitNextSlotAt"]) == (False, None)


# --- the default limit: a provider's, not the offline generator's --------------------------


@pytest.mark.parametrize(
    ("environment", "limit"),
    [
        pytest.param({}, 0, id="offline, unset: no limit"),
        pytest.param({"GENERATOR": "openai"}, 10, id="openai, unset: 10 a window"),
        pytest.param({"JOB_RATE_LIMIT_MAX": "4"}, 4, id="offline, set: the setting"),
        pytest.param({"GENERATOR": "openai", "JOB_RATE_LIMIT_MAX": "0"}, 0, id="openai, set to 0: off"),
    ],
)
def test_the_default_limit_holds_back_a_provider_and_a_set_limit_any_generator(
    monkeypatch, environment, limit
):
    for name in ("GENERATOR", "JOB_RATE_LIMIT_MAX"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)

    assert load_settings()["JOB_RATE_LIMIT_MAX"] == limit


@pytest.mark.slow
def test_a_first_offline_build_of_8_concepts_with_default_settings_takes_seconds(
    app, client, auth, service_env, tmp_path
):
    defaults = {k: v for k, v in service_env.items() if k not in ("JOB_RATE_LIMIT_MAX", "GENERATOR")}
    assert "JOB_RATE_LIMIT_MAX" not in defaults
    worker = start_worker(defaults, tmp_path / "worker.log")
    try:
        path_id = create_path(client, auth, concepts=8)
        started = time.monotonic()
        build = wait_for_build(client, auth, start_build(client, auth, path_id), timeout=120)
        took = time.monotonic() - started
        log = worker.output()
    finally:
        worker.stop()

    # 8 concepts make over 30 calls: at the provider's 10 a minute that would be 3 minutes.
    assert build["totalSubConcepts"] + build["totalConcepts"] + 1 > 30
    assert took < 60, f"{took:.1f} s"
    print(f"8-concept offline build with the default settings: {took:.1f} s")
    assert WAIT_LINE not in log


def test_the_build_api_reports_no_wait_when_no_step_waits(app, client, auth):
    path_id = create_path(client, auth, concepts=1)
    build = build_of(client, auth, start_build(client, auth, path_id))

    assert (
        build["waitingForRateLimit"],
        build["stepsWaitingForRateLimit"],
        build["rateLimitNextSlotAt"],
    ) == (
        False,
        0,
        None,
    )


# --- in the browser ------------------------------------------------------------------------


@pytest.fixture
def tight_web(service_env, tmp_path, app):  # type: ignore[no-untyped-def]
    """gunicorn that knows the tight limit too, so the page's estimate accounts for it."""
    group, base = start_gunicorn({**service_env, **TIGHT}, tmp_path / "gunicorn.log", workers=2)
    yield base
    group.stop()


@pytest.fixture
def page() -> Iterator[Page]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.set_default_timeout(20_000)
        yield page
        browser.close()


@pytest.mark.slow
def test_in_the_browser_a_build_under_a_tight_limit_says_it_waits_and_never_one_second_left(
    app, tight_web, workers, page
):
    make_user(app, "root@example.com", admin=True)
    workers(**TIGHT)
    sign_in(page, tight_web, "root@example.com")
    create_path_on_page(page, "Waiting demo", 3)
    page.click("button:has-text('Build learning path')")

    notice = page.locator("#rate-limit-wait")
    expect(notice).to_contain_text(
        re.compile(r"Waiting for the AI provider's rate limit — next call in ~\d+ s"), timeout=30_000
    )
    eta = page.locator("#panel p.muted", has_text="left").first.inner_text()
    shot(page, "build-waiting-for-rate-limit")
    assert re.fullmatch(r"About \d+ (s|min) left", eta) and eta != "About 1 s left", eta
    expect(page.locator("#percent")).to_have_text("100%", timeout=90_000)
    expect(notice).to_have_count(0)

    page.click("#panel a:has-text('Steps & timeline')")
    expect(page.locator("svg.timeline rect.wait").first).to_be_visible()
    expect(page.locator(".steps")).to_contain_text("waiting for the rate limit")
    shot(page, "admin-build-waits")
