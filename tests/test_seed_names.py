"""The seeds' names live at the edges: models say what a thing is (`buildId`, `rqJobId`), and
app/seed_names.py alone says it the seeds' way (`jobId`, `buildJobId`, `bullJobId`)."""

from __future__ import annotations

from app.models import BuildEvent, BuildStep, DeadLetter
from app.seed_names import alert_json, build_json, bull_state, dead_letter_json, event_json, step_json

SEED_NAMES = {"jobId", "buildJobId", "bullJobId"}


def test_models_say_build_and_rq_job_not_the_seeds_names() -> None:
    event = BuildEvent(id=1, build_id="b1", type="progress", data={})
    assert event.to_dict()["buildId"] == "b1"
    assert not SEED_NAMES & set(event.to_dict())


def test_an_event_calls_its_build_a_job_at_the_edge() -> None:
    body = {"id": 7, "buildId": "b1", "type": "completed", "data": {}}
    assert event_json(body) == {"id": 7, "jobId": "b1", "type": "completed", "data": {}}
    assert list(event_json(body)) == ["id", "jobId", "type", "data"]  # the stream's order kept


def test_builds_steps_and_dead_letters_call_an_rq_job_a_bull_job() -> None:
    assert build_json({"id": "b1", "rqJobId": "step-3"}) == {"id": "b1", "bullJobId": "step-3"}
    assert build_json({"buildId": "b1", "message": "Build job started"}) == {
        "jobId": "b1",
        "message": "Build job started",
    }
    step = {"id": 3, "buildId": "b1", "rqJobId": "step-3"}
    assert step_json(step) == {"id": 3, "buildJobId": "b1", "bullJobId": "step-3"}
    assert dead_letter_json(step) == {"id": 3, "buildJobId": "b1", "bullJobId": "step-3"}
    assert alert_json({"event": "build_failed", "buildId": "b1"}) == {
        "event": "build_failed",
        "buildJobId": "b1",
    }


def test_dead_letter_rows_say_build_and_rq_job() -> None:
    step = BuildStep(id=3, build_id="b1", type="knowledge-units", entity_name="Motivation")
    letter = DeadLetter(
        id=1, build_id="b1", step_id=3, step=step, original_queue="generate-ku", job_id="step-3"
    )
    body = letter.to_dict()
    assert (body["buildId"], body["rqJobId"]) == ("b1", "step-3")
    assert not SEED_NAMES & set(body)


def test_a_modules_status_reads_as_the_seeds_bull_job_state() -> None:
    assert [bull_state(s) for s in ("queued", "running", "retrying", "completed", "failed")] == [
        "waiting",
        "active",
        "delayed",
        "completed",
        "failed",
    ]
    assert bull_state("pending") == bull_state("cancelled") == "waiting"
