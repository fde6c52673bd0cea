"""A build's step rows and counters: the queue and job id of each step, creating steps in
the caller's transaction, and adding to the build's counters in SQL."""

from __future__ import annotations

from typing import Any

from flask import current_app
from sqlalchemy import insert, select, update

from app.database import utcnow
from app.extensions import db
from app.jobs.queues import BUILD_PATH_QUEUE, DECOMPOSE_QUEUE, GENERATE_KU_QUEUE
from app.models import Build, BuildStatus, BuildStep, StepType, WorkStatus

BUILD_COUNTERS = (
    "total_concepts",
    "completed_concepts",
    "total_sub_concepts",
    "completed_sub_concepts",
    "total_knowledge_units",
    "completed_knowledge_units",
)


QUEUE_OF_STEP = {
    StepType.CONCEPTS: BUILD_PATH_QUEUE,
    StepType.SUB_CONCEPTS: DECOMPOSE_QUEUE,
    StepType.KNOWLEDGE_UNITS: GENERATE_KU_QUEUE,
}


def step_job_id(step_id: int) -> str:
    return f"step-{step_id}"


def bump(build_id: str, **increments: int) -> None:
    """Add to the build's counters in SQL, so parallel steps lose no increment."""
    db.session.execute(
        update(Build)
        .where(Build.id == build_id)
        .values({getattr(Build, name): getattr(Build, name) + n for name, n in increments.items()})
    )


def new_step(
    build_id: str,
    kind: StepType,
    entity_id: int,
    name: str,
    parent: int | None,
    position: int,
    status: WorkStatus,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "build_id": build_id,
        "type": kind,
        "entity_id": entity_id,
        "entity_name": name,
        "parent_step_id": parent,
        "position": position,
        "status": status,
        "created_at": utcnow(),
        **extra,
    }


def insert_steps(rows: list[dict[str, Any]]) -> list[tuple[int, str]]:
    """Insert steps (in the caller's transaction); returns the (id, type) of those queued, in
    insertion order. One executemany and one read back per step type: an INSERT ... RETURNING
    in parameter order runs once per row on SQLite, so a 1,000-concept fan-out was 1,000s of them."""
    if not rows:
        return []
    db.session.execute(insert(BuildStep), rows)
    queued: dict[tuple[str, str], list[int]] = {}
    for row in rows:
        if row["status"] == WorkStatus.QUEUED:
            queued.setdefault((row["build_id"], row["type"]), []).append(row["entity_id"])
    found: list[tuple[int, str]] = []
    for (build_id, kind), entity_ids in queued.items():
        created = db.session.execute(
            select(BuildStep.id, BuildStep.type)
            .where(
                BuildStep.build_id == build_id, BuildStep.type == kind, BuildStep.entity_id.in_(entity_ids)
            )
            .order_by(BuildStep.id)
        )
        found += [(step_id, step_type) for step_id, step_type in created]
    return found


def child_status(build_id: str) -> WorkStatus:
    """Children wait as pending: released a window at a time (release), or, with no
    window (RELEASE_WINDOW=0), queued at once unless the build is paused (resume queues them)."""
    if current_app.config["RELEASE_WINDOW"] != 0:
        return WorkStatus.PENDING
    status = db.session.scalar(select(Build.status).where(Build.id == build_id))
    return WorkStatus.QUEUED if status == BuildStatus.PROCESSING else WorkStatus.PENDING


def set_stage(build_id: str, stage: str) -> None:
    db.session.execute(
        update(Build)
        .where(Build.id == build_id, Build.status == BuildStatus.PROCESSING)
        .values(current_stage=stage)
    )
