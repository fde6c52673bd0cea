"""GENERATOR=openai against a real local Chat Completions server: content, invalid output,
429 with Retry-After, 5xx, timeouts, 401, token accounting and limits, memoised answers."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import BuildStep, Concept, KnowledgeUnit, LessonPlan
from tests.fake_llm import MODEL, USAGE, FakeChatServer
from tests.helpers import create_path, create_workflow, start_build, wait_for_build, wait_for_status
from tests.helpers.llm import llm_settings


def _steps(app, build_id):  # type: ignore[no-untyped-def]
    with app.app_context():
        return list(
            db.session.scalars(select(BuildStep).where(BuildStep.build_id == build_id).order_by(BuildStep.id))
        )


@pytest.mark.slow
def test_a_lesson_plan_run_stores_the_servers_content_and_its_token_counts(app, client, auth, workers):
    with FakeChatServer() as fake:
        workflow_id = create_workflow(client, auth, modules=2, hours=1.5)
        workers(**llm_settings(fake))
        client.post(f"/api/v3/workflow/{workflow_id}/step10", headers=auth)

        status = wait_for_status(client, auth, workflow_id, "complete", timeout=60)

    with app.app_context():
        lessons = db.session.scalars(select(LessonPlan)).all()
    assert [lesson.title for lesson in lessons] == ["Server lesson", "Server lesson"]
    assert all(lesson.duration_minutes == 90 for lesson in lessons)
    usage = status["usage"]
    assert usage["promptTokens"] == sum(USAGE["prompt_tokens"] for _ in fake.answered())
    assert usage["completionTokens"] == sum(USAGE["completion_tokens"] for _ in fake.answered())
    assert usage["models"] == ["fake-model-1"] and usage["calls"] == 2
    assert all(entry["authorization"] == "Bearer sk-test" for entry in fake.log)


@pytest.mark.slow
def test_a_build_stores_the_servers_tree_and_sums_its_tokens(app, client, auth, workers):
    with FakeChatServer() as fake:
        workers(**llm_settings(fake))
        build = wait_for_build(client, auth, start_build(client, auth, create_path(client, auth, concepts=2)))

    with app.app_context():
        assert [c.name for c in db.session.scalars(select(Concept).order_by(Concept.position))] == [
            "Server concept 1",
            "Server concept 2",
        ]
        assert db.session.scalar(select(KnowledgeUnit.title)) == "Server unit 1"
    calls = len(fake.answered())
    assert calls == 1 + 2 + 4
    assert build["usage"]["promptTokens"] == calls * USAGE["prompt_tokens"]
    assert build["usage"]["completionTokens"] == calls * USAGE["completion_tokens"]
    steps = client.get(f"/api/jobs/{build['id']}/steps", headers=auth).get_json()["data"]
    assert sum(s["usage"]["promptTokens"] for s in steps) == calls * USAGE["prompt_tokens"]
    assert build["usage"]["calls"] == calls and build["usage"]["models"] == [MODEL]


@pytest.mark.parametrize(
    ("mode", "failed_attempts", "requests", "category"),
    [
        pytest.param("invalid_once", 0, 2, None, id="invalid JSON once, then valid"),
        pytest.param("rate_limit_once", 0, 2, None, id="429 with Retry-After"),
        pytest.param("error_twice", 2, 3, "provider_error", id="500 twice, then success"),
        pytest.param("slow_once", 1, 2, "timeout", id="a timeout"),
    ],
)
@pytest.mark.slow
def test_a_misbehaving_server_is_survived_as_it_should_be(
    app, client, auth, workers, mode, failed_attempts, requests, category
):
    with FakeChatServer(mode) as fake:
        workers(**llm_settings(fake))
        build = wait_for_build(client, auth, start_build(client, auth, create_path(client, auth, concepts=1)))

    orchestrator = _steps(app, build["id"])[0]
    assert orchestrator.status == "completed"
    assert orchestrator.failed_attempts == failed_attempts
    assert orchestrator.error_category == category
    concept_requests = [e for e in fake.log if e["schema"] == "concepts"]
    assert len(concept_requests) == requests
    if mode == "rate_limit_once":
        gap = concept_requests[1]["time"] - concept_requests[0]["time"]
        assert gap >= 0.9, f"Retry-After: 1 was not honoured (next request after {gap:.2f}s)"


@pytest.mark.slow
def test_output_that_stays_invalid_fails_the_step_quoting_what_was_wrong(app, client, auth, workers):
    with FakeChatServer("always_invalid") as fake:
        app.config["JOB_MAX_ATTEMPTS"] = 2
        workers(**llm_settings(fake), JOB_MAX_ATTEMPTS="2")
        build = wait_for_build(
            client, auth, start_build(client, auth, create_path(client, auth, concepts=1)), "failed"
        )

    (orchestrator,) = _steps(app, build["id"])
    assert (orchestrator.status, orchestrator.error_category, orchestrator.failed_attempts) == (
        "failed",
        "invalid_output",
        2,
    )
    assert "invalid output" in orchestrator.error and "this is { not json" in orchestrator.error
    assert len(fake.log) == 4, "each attempt asks once more with the error, then gives up"


@pytest.mark.slow
def test_a_refused_key_fails_at_once_with_what_to_fix(app, client, auth, workers):
    with FakeChatServer("unauthorized") as fake:
        workers(**llm_settings(fake))
        build = wait_for_build(
            client, auth, start_build(client, auth, create_path(client, auth, concepts=1)), "failed"
        )

    (orchestrator,) = _steps(app, build["id"])
    assert orchestrator.attempts == 1 and orchestrator.error_category == "provider_error"
    assert f"OPENAI_API_KEY was refused by {fake.base_url}" in orchestrator.error
    assert len(fake.log) == 1, "a 401 is not retried"


@pytest.mark.slow
def test_the_token_cap_holds_across_two_worker_processes(app, client, auth, workers):
    cap = 500
    with FakeChatServer() as fake:
        limits = llm_settings(
            fake,
            JOB_RATE_LIMIT_TOKENS=str(cap),
            JOB_RATE_LIMIT_DURATION="2000",
            OPENAI_MAX_OUTPUT_TOKENS="20",
        )
        workers(**limits)
        workers(**limits)
        wait_for_build(
            client, auth, start_build(client, auth, create_path(client, auth, concepts=3)), timeout=120
        )

    served = [e for e in fake.log if e["status"] == 200]
    assert len(served) >= 10
    busiest = max(
        sum(e["tokens"] for e in served if start["time"] <= e["time"] < start["time"] + 1.975)
        for start in served
    )
    assert busiest <= cap, f"{busiest} tokens served within one 2 s window"


@pytest.mark.slow
def test_a_step_whose_call_already_succeeded_reuses_the_answer(app, client, auth):
    from app.generators.schemas import PathBrief
    from app.pipelines.generation import call_generator
    from app.pipelines.learning_paths.steps import generate_concepts

    with FakeChatServer() as fake:
        app.config.update(llm_settings(fake), OPENAI_TIMEOUT_S=1.0, OPENAI_COOLDOWN_S=0.2)
        path_id = create_path(client, auth, concepts=2)
        build_id = start_build(client, auth, path_id)
        with app.app_context():
            # The first delivery's call succeeded, then its worker died before storing anything.
            brief = PathBrief(name="Statistics for Nurses", topic="statistics", concept_count=2)
            call_generator("concepts", lambda g: g.concepts(brief, lambda _: None))
            assert len(fake.log) == 1
            (step,) = db.session.scalars(select(BuildStep).where(BuildStep.build_id == build_id))

            generate_concepts(step.id)  # the step runs again

        assert len(fake.log) == 1, "no second call to the server"
        with app.app_context():
            assert db.session.scalar(select(BuildStep.status).where(BuildStep.id == step.id)) == "completed"
            assert db.session.scalar(select(Concept.name)) == "Server concept 1"


@pytest.mark.slow
def test_a_fresh_build_asks_the_server_again(app, client, auth, workers):
    with FakeChatServer() as fake:
        workers(**llm_settings(fake))
        path_id = create_path(client, auth, concepts=1)
        wait_for_build(client, auth, start_build(client, auth, path_id))
        first = len(fake.log)
        again = client.post(f"/api/jobs/build/{path_id}", headers=auth, json={"fresh": True})
        wait_for_build(client, auth, again.get_json()["jobId"])

    assert len(fake.log) == 2 * first


@pytest.mark.slow
def test_generator_check_says_plainly_whether_the_provider_works(app):
    runner = app.test_cli_runner()
    with FakeChatServer() as fake:
        app.config.update(llm_settings(fake), OPENAI_TIMEOUT_S=1.0)
        works = runner.invoke(args=["generator", "check"])
    with FakeChatServer("unauthorized") as fake:
        app.config.update(llm_settings(fake), OPENAI_TIMEOUT_S=1.0)
        refused = runner.invoke(args=["generator", "check"])

    assert works.exit_code == 0 and "works" in works.output and "gpt-test" in works.output
    assert (
        refused.exit_code != 0
        and "does not work" in refused.output
        and "OPENAI_API_KEY was refused" in refused.output
    )


@pytest.mark.parametrize(
    ("mode", "used", "refusals"), [("no_json_schema", "json_object", 1), ("no_response_format", "none", 2)]
)
@pytest.mark.slow
def test_a_server_without_structured_output_is_asked_in_the_format_it_takes(
    app, client, auth, workers, mode, used, refusals
):
    with FakeChatServer(mode) as fake:
        workers(**llm_settings(fake))
        build_id = start_build(client, auth, create_path(client, auth, concepts=2))
        wait_for_build(client, auth, build_id)

    answered = fake.answered()
    assert {entry["format"] for entry in answered} == {used}
    # Found out once, by the orchestrator's first call; the other workers read it from Redis.
    assert [entry["format"] for entry in fake.log if entry["status"] == 400] == [
        "json_schema",
        "json_object",
    ][:refusals]
    with app.app_context():
        assert db.session.scalar(select(Concept.name).order_by(Concept.position)) == "Server concept 1"
        assert db.session.scalar(select(KnowledgeUnit.title)) == "Server unit 1"


@pytest.mark.slow
def test_a_fixed_response_format_the_server_refuses_fails_at_once_saying_so(app, client, auth, workers):
    with FakeChatServer("no_json_schema") as fake:
        workers(**llm_settings(fake, OPENAI_RESPONSE_FORMAT="json_schema"))
        build_id = start_build(client, auth, create_path(client, auth, concepts=2))
        wait_for_build(client, auth, build_id, "failed")

    (orchestrator,) = _steps(app, build_id)
    assert orchestrator.attempts == 1 and len(fake.log) == 1
    assert (
        "rejected the request (400): response_format type json_schema is not supported" in orchestrator.error
    )


def test_generator_check_names_the_output_format_and_a_bad_setting(app):
    runner = app.test_cli_runner()
    with FakeChatServer("no_json_schema") as fake:
        app.config.update(llm_settings(fake), OPENAI_TIMEOUT_S=1.0)
        stepped_down = runner.invoke(args=["generator", "check"])
        app.config.update(OPENAI_RESPONSE_FORMAT="xml")
        misconfigured = runner.invoke(args=["generator", "check"])

    assert stepped_down.exit_code == 0
    assert "output format: JSON mode (response_format=json_object)" in stepped_down.output
    assert (
        misconfigured.exit_code != 0
        and "OPENAI_RESPONSE_FORMAT is 'xml': use one of auto" in misconfigured.output
    )


def _orchestrator_worker(redis) -> int | None:  # type: ignore[no-untyped-def]
    from rq import Worker

    for worker in Worker.all(connection=redis):
        if worker.get_current_job_id() and "build-path" in worker.queue_names():
            return worker.pid
    return None


@pytest.mark.slow
def test_a_worker_killed_after_its_call_succeeded_costs_no_second_call(
    app, client, auth, workers, redis_server, database_url
):
    """The call is paid for and its answer stored; the worker dies before the step's content is.
    Only PostgreSQL can hold that moment still (a lock on the concepts table alone; SQLite locks
    the whole file, memo included), so this runs under `make test-postgres`."""
    import os
    import signal

    from sqlalchemy import create_engine, func, text
    from sqlalchemy.engine import make_url

    from app.models import GenerationMemo
    from tests.services import wait_until

    url = make_url(database_url)
    if url.get_backend_name() != "postgresql":
        pytest.skip("needs a table lock: runs under make test-postgres")
    path_id = create_path(client, auth, concepts=2)
    locker = create_engine(url.set(drivername="postgresql+psycopg"))
    with FakeChatServer() as fake:
        workers(**llm_settings(fake, OPENAI_TIMEOUT_S="5"))
        with locker.connect() as conn, conn.begin():
            conn.execute(text("LOCK TABLE concepts IN EXCLUSIVE MODE"))  # the store will wait here
            build_id = start_build(client, auth, path_id)

            def memo_stored() -> bool:
                with app.app_context():
                    return db.session.scalar(select(func.count()).select_from(GenerationMemo)) == 1

            wait_until(memo_stored, timeout=30, message="the concepts answer to be stored")
            victim = wait_until(lambda: _orchestrator_worker(redis_server.client()), timeout=10)
            os.kill(victim, signal.SIGKILL)
        locker.dispose()
        build = wait_for_build(client, auth, build_id, timeout=90)

    asked_for_concepts = [e for e in fake.log if e["schema"] == "concepts"]
    assert len(asked_for_concepts) == 1, "the re-run used the stored answer"
    orchestrator = _steps(app, build_id)[0]
    assert (orchestrator.type, orchestrator.attempts, orchestrator.worker_losses) == ("concepts", 2, 1)
    assert build["totalConcepts"] == 2
    with app.app_context():
        assert db.session.scalar(select(Concept.name).order_by(Concept.position)) == "Server concept 1"
