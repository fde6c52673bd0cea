"""A lesson-plan run's event log, as a build has one: rows in the database (replayable by id)
and, after the commit that added them, the run's key on the build doorbell's channel, so an SSE
stream on any web process hears of them at once.

Events: `progress` (a module started), `module_completed`, `error` (an attempt failed; `final`
says whether the module gave up) and `completed` (the run ended: its status says how).
"""

from __future__ import annotations

import logging
from typing import Any

from redis.exceptions import RedisError
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from app.extensions import db
from app.jobs.queues import get_redis
from app.models import LessonPlanRun, Module, RunEvent, RunStatus, WorkStatus
from app.pipelines.doorbell import DOORBELL_CHANNEL

log = logging.getLogger(__name__)

_RUNS_TO_RING = "run_events_to_ring"  # session.info key: runs whose events await the commit


def doorbell_key(run_id: str) -> str:
    """What the doorbell carries for a run (a build's key is its bare id)."""
    return f"run:{run_id}"


def running_run_id(workflow_id: str) -> str | None:
    return db.session.scalar(
        select(LessonPlanRun.id).where(
            LessonPlanRun.workflow_id == workflow_id, LessonPlanRun.status == RunStatus.RUNNING
        )
    )


def add_run_event(workflow_id: str, type_: str, **data: Any) -> None:
    """In the caller's transaction: append an event to the workflow's running run (if any)."""
    run_id = running_run_id(workflow_id)
    if run_id is None:
        return
    counts = _module_counts(workflow_id)
    db.session.add(RunEvent(run_id=run_id, type=type_, data={**data, **counts}))
    db.session.info.setdefault(_RUNS_TO_RING, set()).add(run_id)


def module_event(module: Module, type_: str, **data: Any) -> None:
    add_run_event(module.workflow_id, type_, moduleIndex=module.position, title=module.title, **data)


def _module_counts(workflow_id: str) -> dict[str, int]:
    done, total = db.session.execute(
        select(
            func.count(Module.id).filter(Module.status == WorkStatus.COMPLETED), func.count(Module.id)
        ).where(Module.workflow_id == workflow_id)
    ).one()
    return {"modulesGenerated": done, "totalModules": total}


def events_after(run_id: str, after_id: int, limit: int = 500) -> list[RunEvent]:
    return list(
        db.session.scalars(
            select(RunEvent)
            .where(RunEvent.run_id == run_id, RunEvent.id > after_id)
            .order_by(RunEvent.id)
            .limit(limit)
        )
    )


def last_event_id(run_id: str) -> int:
    return db.session.scalar(select(func.max(RunEvent.id)).where(RunEvent.run_id == run_id)) or 0


@event.listens_for(Session, "after_commit")
def _ring_after_commit(session: Session) -> None:
    """Once the events are committed (never before: a stream would read nothing new)."""
    for run_id in session.info.pop(_RUNS_TO_RING, ()):
        try:
            get_redis().publish(DOORBELL_CHANNEL, doorbell_key(run_id))
        except RedisError:  # streams also poll the database now and then
            log.debug("could not publish run %s events", run_id)


@event.listens_for(Session, "after_rollback")
def _forget_after_rollback(session: Session) -> None:
    session.info.pop(_RUNS_TO_RING, None)
