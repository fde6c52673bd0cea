"""The seeds' names, said at the edges only. Inside the code a *job* is an RQ job and a *build*
is a build; the seeds' API called a build a job (`jobId`, `buildJobId`) and an RQ job a Bull
job (`bullJobId`). Models and pipelines write the code's names (`buildId`, `rqJobId`); the
JSON API, the SSE stream and the alert webhook translate them here, in one place.

It imports nothing of the app but the status enums, so that the webhook and the step10 status,
made by pipelines, use the same tables as the API's routes."""

from __future__ import annotations

from typing import Any

from app.models.statuses import WorkStatus

# The code's name → the seed's name, by what the body describes.
_BUILD = {"buildId": "jobId", "rqJobId": "bullJobId"}  # a build, or an answer naming one
_STEP = {"buildId": "buildJobId", "rqJobId": "bullJobId"}  # a step, and a step's dead letter
_EVENT = {"buildId": "jobId"}  # the SSE stream's and the activity log's events
_ALERT = {"buildId": "buildJobId"}
# A module's status as the step10 routes say its job's state: Bull's names, as the seed used them.
_BULL_STATE = {
    WorkStatus.QUEUED: "waiting",
    WorkStatus.RUNNING: "active",
    WorkStatus.RETRYING: "delayed",
    WorkStatus.COMPLETED: "completed",
    WorkStatus.FAILED: "failed",
}


def _renamed(body: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    """The body with the seed's names, its keys in the same order."""
    return {names.get(key, key): value for key, value in body.items()}


def build_json(body: dict[str, Any]) -> dict[str, Any]:
    return _renamed(body, _BUILD)


def step_json(body: dict[str, Any]) -> dict[str, Any]:
    return _renamed(body, _STEP)


def dead_letter_json(body: dict[str, Any]) -> dict[str, Any]:
    return _renamed(body, _STEP)


def event_json(body: dict[str, Any]) -> dict[str, Any]:
    return _renamed(body, _EVENT)


def alert_json(body: dict[str, Any]) -> dict[str, Any]:
    return _renamed(body, _ALERT)


def bull_state(status: str) -> str:
    """A module's status as the seed's Bull job state; one not in flight nor ended is waiting."""
    return _BULL_STATE.get(WorkStatus(status), "waiting")
