"""app/pipelines/in_flight.py in-process against real Redis: how recovery judges one unit of
work in flight, the same for a build's step and a workflow's module."""

from __future__ import annotations

from datetime import timedelta

from rq.job import JobStatus

from app.database import utcnow
from app.jobs.enqueue import StrandedJobs, enqueue_unique, fetch_job
from app.models import BuildStep, Module, WorkStatus
from app.pipelines.in_flight import InFlight, judge_in_flight

QUEUE = "dead-letter"


def noop() -> None:
    """A job function that is never run here (no worker)."""


def _stranded() -> StrandedJobs:
    return StrandedJobs(timedelta(seconds=60))


def test_running_work_is_judged_by_its_lease_not_its_job(app) -> None:
    with app.app_context():
        held = Module(status=WorkStatus.RUNNING, lease_expires_at=utcnow() + timedelta(seconds=30))
        lapsed = BuildStep(status=WorkStatus.RUNNING, lease_expires_at=utcnow() - timedelta(seconds=1))
        assert judge_in_flight(held, None, _stranded()) is InFlight.ALIVE
        assert judge_in_flight(lapsed, None, _stranded()) is InFlight.LEASE_LAPSED


def test_queued_work_whose_job_is_gone_or_ended_is_lost(app) -> None:
    with app.app_context():
        assert judge_in_flight(BuildStep(status=WorkStatus.QUEUED), None, _stranded()) is InFlight.LOST
        assert enqueue_unique(QUEUE, noop, job_id="in-flight-ended")
        ended = fetch_job("in-flight-ended")
        ended.set_status(JobStatus.FAILED)
        assert judge_in_flight(Module(status=WorkStatus.RETRYING), ended, _stranded()) is InFlight.LOST


def test_queued_work_whose_job_waits_on_its_queue_is_alive(app) -> None:
    with app.app_context():
        assert enqueue_unique(QUEUE, noop, job_id="in-flight-waiting")
        waiting = fetch_job("in-flight-waiting")
        assert judge_in_flight(BuildStep(status=WorkStatus.QUEUED), waiting, _stranded()) is InFlight.ALIVE
        assert fetch_job("in-flight-waiting") is not None  # an alive job is not discarded


def test_a_job_started_long_ago_without_a_claim_is_stranded_and_discarded(app) -> None:
    with app.app_context():
        assert enqueue_unique(QUEUE, noop, job_id="in-flight-stranded")
        job = fetch_job("in-flight-stranded")
        job.set_status(JobStatus.STARTED)
        job.started_at = utcnow() - timedelta(minutes=5)
        job.save()
        judged = judge_in_flight(Module(status=WorkStatus.QUEUED), fetch_job(job.id), _stranded())
        assert judged is InFlight.LOST
        assert fetch_job("in-flight-stranded") is None
