"""The learning-path build: concepts → sub-concepts → knowledge units, fanned out in parallel.

One step per unit of generation, each a row (BuildStep) and an RQ job whose only argument is
the step's id. A step claims its row under a lease, generates, and in one transaction fenced
by its claim replaces what it wrote before, marks itself done, updates the build's counters
in SQL (no read-modify-write), creates its child steps and logs an event; only then are the
children enqueued (`queueing`). When the last step of a build reaches a final state, finalize
runs (`finalize`); a failed attempt is recorded by `failures`; step rows and the build's
counters are written by `step_rows`.

Work that is already done is never redone: concepts, a concept's sub-concepts and a
sub-concept's units each carry the time they were stored, and a step for them is `skipped`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from redis.exceptions import RedisError
from sqlalchemy import ColumnElement, exists, func, select, update
from sqlalchemy.orm import selectinload

from app.database import commit_keeping_loaded, utcnow
from app.extensions import db
from app.generators import Generator, ProgressCallback
from app.generators.schemas import ConceptBrief, PathBrief, SubConceptBrief
from app.jobs import claims
from app.models import (
    Build,
    BuildStatus,
    BuildStep,
    Concept,
    KnowledgeUnit,
    LearningPath,
    StepType,
    SubConcept,
    WorkStatus,
)
from app.models.statuses import IN_FLIGHT
from app.pipelines.generation import generate_under_lease
from app.pipelines.learning_paths.events import add_event, ring
from app.pipelines.learning_paths.failures import record_step_failure
from app.pipelines.learning_paths.queueing import enqueue_steps, maybe_finalize, release_freed_places
from app.pipelines.learning_paths.release import room_for_a_batch
from app.pipelines.learning_paths.step_rows import (
    BUILD_COUNTERS,
    QUEUE_OF_STEP,
    bump,
    child_status,
    insert_steps,
    new_step,
    set_stage,
)
from app.pipelines.step_lifecycle import StepLifecycle

log = logging.getLogger(__name__)


def _after_commit(build_id: str, children: list[tuple[int, str]], kind: str) -> None:
    """Tell listeners, enqueue the children, release what the step's place (or its children)
    allow, and finalize if nothing is left."""
    ring(build_id)
    try:
        enqueue_steps(children)  # with a window, children are pending: released just below
        if _worth_a_pass(build_id, StepType(kind), bool(children)):
            release_freed_places(build_id)
    except RedisError:
        log.warning("build %s: could not enqueue %s steps; recovery will", build_id, len(children))
    maybe_finalize(build_id)


def _worth_a_pass(build_id: str, kind: StepType, has_children: bool) -> bool:
    """Whether a finished step may have left a batch of places free: in its own queue, or, for
    its pending children, in theirs; or whether its children are the build's first in their
    queue (a newcomer's first step gets a place even in a full window). A pass is a database
    read and write under a lock; one per decompose step finishing (most leaving the unit queue
    full) cost a third of a lone build's throughput with the offline generator. The plan step
    always releases (its children are the build's first steps)."""
    if kind == StepType.CONCEPTS:
        return True
    if room_for_a_batch(QUEUE_OF_STEP[kind]):
        return True
    if not has_children:
        return False
    return room_for_a_batch(QUEUE_OF_STEP[StepType.KNOWLEDGE_UNITS], finishing=False) or not _units_in_flight(
        build_id
    )


def _units_in_flight(build_id: str) -> bool:
    """Whether the build holds any unit step in Redis (one indexed look-up)."""
    return (
        db.session.scalar(
            select(BuildStep.id)
            .where(
                BuildStep.build_id == build_id,
                BuildStep.type == StepType.KNOWLEDGE_UNITS,
                BuildStep.status.in_(IN_FLIGHT),
            )
            .limit(1)
        )
        is not None
    )


# --- running a step ----------------------------------------------------------------------


def _build_processing() -> ColumnElement[bool]:
    return exists().where(Build.id == BuildStep.build_id, Build.status == BuildStatus.PROCESSING)


def _finish_step(step: BuildStep, _work: claims.Claim, children: list[tuple[int, str]]) -> str:
    _after_commit(step.build_id, children, step.type)
    return f"{step.type}: {len(children)} child steps"


def _not_claimed(step: BuildStep) -> str:
    """A paused build parks the step, a cancelled one cancels it (a child inserted while
    the cancel ran); anything else (done, held by a live attempt) is left alone."""
    build_status = db.session.scalar(select(Build.status).where(Build.id == step.build_id))
    waiting = BuildStep.status.in_([WorkStatus.PENDING, WorkStatus.QUEUED, WorkStatus.RETRYING])
    values: dict[str, Any] | None = None
    if build_status == BuildStatus.PAUSED:
        values = {"status": WorkStatus.PENDING}
    elif build_status == BuildStatus.CANCELLED:
        values = {"status": WorkStatus.CANCELLED, "error_category": "cancelled", "completed_at": utcnow()}
    if values is not None:
        db.session.execute(update(BuildStep).where(BuildStep.id == step.id, waiting).values(**values))
        db.session.commit()
        release_freed_places(step.build_id)
    return f"not run: step is {step.status}, build is {build_status}"


def _record_failure(work: claims.Claim, step: BuildStep, exc: Exception) -> None:
    """Record the failed attempt; the step has left Redis, so its place goes to the next."""
    record_step_failure(work, step, exc)
    release_freed_places(step.build_id)


STEP: StepLifecycle[BuildStep, list[tuple[int, str]]] = StepLifecycle(
    model=BuildStep,
    missing="step deleted",
    label=lambda step: f"build {step.build_id} step {step.id}",
    log_context=lambda step: {"build": step.build_id, "step": step.id, "attempt": step.attempts},
    not_claimed=_not_claimed,
    record_failure=_record_failure,
    finish=_finish_step,
    stopped=lambda step: release_freed_places(step.build_id),
    claim_conditions=lambda: (_build_processing(),),
)


def _generate(
    work: claims.Claim, step: BuildStep, kind: str, call: Callable[[Generator, ProgressCallback], Any]
) -> Any:
    """Run one generation under the step's lease, within the shared limits."""
    regeneration = _regeneration(step.build_id)
    return generate_under_lease(
        work,
        kind,
        call,
        regeneration=regeneration,
        watch_cancel=True,  # a cancelled build's steps stop within half a second
        build_id=step.build_id,
        step_id=step.id,
    )


def _regeneration(build_id: str) -> int:
    """0 for a build that reuses what is stored; for a fresh one (a regenerate), which fresh build
    of its path it is, counting from 1: every step of a build draws the same, the next differs."""
    build = db.session.execute(
        select(Build.path_id, Build.created_at, Build.force_fresh).where(Build.id == build_id)
    ).one()
    if not build.force_fresh:
        return 0
    earlier = (Build.path_id == build.path_id) & Build.force_fresh & (Build.created_at <= build.created_at)
    return db.session.scalar(select(func.count(Build.id)).where(earlier)) or 1


# --- the orchestrator: concepts ----------------------------------------------------------


def generate_concepts(step_id: int) -> str:
    """The orchestrator: generate the path's concepts, then one decompose step per concept."""
    return STEP.run(step_id, _produce_concepts)


def _produce_concepts(step: BuildStep, work: claims.Claim) -> list[tuple[int, str]]:
    build = db.session.get_one(Build, step.build_id)
    path = build.path
    skipped = path.concepts_generated_at is not None
    if not skipped:
        brief = PathBrief(
            name=path.name, topic=path.topic, description=path.description, concept_count=path.concept_count
        )
        drafts = _generate(work, step, "concepts", lambda g, p: g.concepts(brief, p))
    if not claims.mark_completed(work, **({"status": WorkStatus.SKIPPED} if skipped else {})):
        db.session.rollback()
        return []
    if not skipped:
        db.session.query(Concept).filter_by(path_id=path.id).delete()
        db.session.add_all(
            Concept(path_id=path.id, position=i, name=d.name, description=d.description)
            for i, d in enumerate(drafts)
        )
        path.concepts_generated_at = utcnow()
        db.session.flush()
    children = _fan_out_concepts(build, step)
    db.session.execute(update(Build).where(Build.id == build.id).values(current_stage="sub-concepts"))
    add_event(build.id, "progress", stage="concepts", status="completed", count=build.total_concepts)
    db.session.commit()
    return children


def _fan_out_concepts(build: Build, parent: BuildStep) -> list[tuple[int, str]]:
    """One sub-concepts step per concept of the path, with the counters of what is carried over."""
    in_path = Concept.path_id == build.path_id
    concepts = db.session.scalars(
        select(Concept).where(in_path).order_by(Concept.position).options(selectinload(Concept.sub_concepts))
    ).all()
    queued, counters = _concept_steps(build.id, list(concepts), parent.id, _unit_counts(in_path))
    db.session.execute(update(Build).where(Build.id == build.id).values(**counters))
    build.total_concepts = counters["total_concepts"]
    return queued


def _concept_steps(
    build_id: str, concepts: list[Concept], parent_id: int | None, unit_counts: dict[int, int]
) -> tuple[list[tuple[int, str]], dict[str, int]]:
    """A sub-concepts step per concept (`skipped` if decomposed before) and, under the decomposed
    ones, a knowledge-unit step per sub-concept (`skipped` where done), in the caller's
    transaction. Returns the steps queued and the build's counters for these concepts;
    `unit_counts` gives each sub-concept's stored units."""
    status = child_status(build_id)
    rows = []
    for concept in concepts:
        subs = concept.sub_concepts if concept.decomposed_at else []
        rows.append(
            new_step(
                build_id,
                StepType.SUB_CONCEPTS,
                concept.id,
                concept.name,
                parent_id,
                concept.position,
                WorkStatus.SKIPPED if concept.decomposed_at else status,
                children_total=len(subs),
                children_done=sum(1 for sub in subs if sub.units_generated_at),
            )
        )
    queued = insert_steps(rows)
    counters = dict.fromkeys(BUILD_COUNTERS, 0) | {"total_concepts": len(concepts)}
    step_of = dict(
        db.session.execute(
            select(BuildStep.entity_id, BuildStep.id).where(
                BuildStep.build_id == build_id, BuildStep.type == StepType.SUB_CONCEPTS
            )
        ).all()
    )
    unit_rows = []
    for concept in (c for c in concepts if c.decomposed_at):
        counters["completed_concepts"] += 1
        counters["total_sub_concepts"] += len(concept.sub_concepts)
        for sub in concept.sub_concepts:
            _count_units(counters, sub, unit_counts.get(sub.id, 0))
            unit_rows.append(_units_step(build_id, sub, step_of[concept.id], status))
    queued += insert_steps(unit_rows)
    return queued, counters


def _unit_counts(concepts: ColumnElement[bool]) -> dict[int, int]:
    """Stored units per sub-concept of the concepts matching `concepts`, in one query (a build
    of a path with 10,000 units is planned in a request)."""
    rows = db.session.execute(
        select(KnowledgeUnit.sub_concept_id, func.count(KnowledgeUnit.id))
        .join(SubConcept, KnowledgeUnit.sub_concept_id == SubConcept.id)
        .join(Concept, SubConcept.concept_id == Concept.id)
        .where(concepts)
        .group_by(KnowledgeUnit.sub_concept_id)
    ).all()
    return {sub_id: count for sub_id, count in rows}


def _count_units(counters: dict[str, int], sub: SubConcept, stored: int) -> None:
    """Add a sub-concept whose units are carried over (if any) to the build's counters."""
    units = stored if sub.units_generated_at else 0
    counters["completed_sub_concepts"] += bool(sub.units_generated_at)
    counters["total_knowledge_units"] += units
    counters["completed_knowledge_units"] += units


def _units_step(build_id: str, sub: SubConcept, parent_id: int | None, status: WorkStatus) -> dict[str, Any]:
    done = WorkStatus.SKIPPED if sub.units_generated_at else status
    return new_step(build_id, StepType.KNOWLEDGE_UNITS, sub.id, sub.name, parent_id, sub.position, done)


# --- planning a build at its start -------------------------------------------------------


def plan_build(build: Build, piece: Concept | SubConcept | None) -> None:
    """Create the build's first steps and counters, in the caller's transaction.

    A whole path whose concepts exist is fanned out at once (the orchestrator `skipped`), so
    from its first poll the build counts what it carries over. A build of one piece starts
    at that piece's step, and its counters count that piece only.
    """
    if isinstance(piece, Concept):
        _, counters = _concept_steps(build.id, [piece], None, _unit_counts(Concept.id == piece.id))
        _set_counters(build, counters, "sub-concepts")
    elif isinstance(piece, SubConcept):
        insert_steps([_units_step(build.id, piece, None, child_status(build.id))])
        counters = dict.fromkeys(BUILD_COUNTERS, 0) | {
            "total_concepts": 1,
            "completed_concepts": 1,
            "total_sub_concepts": 1,
        }
        _count_units(counters, piece, len(piece.knowledge_units))
        _set_counters(build, counters, "knowledge-units")
    else:
        _plan_path(build)


def _plan_path(build: Build) -> None:
    path = build.path
    orchestrator = BuildStep(
        build_id=build.id, type=StepType.CONCEPTS, entity_name=path.name, status=WorkStatus.PENDING
    )
    db.session.add(orchestrator)
    if path.concepts_generated_at is None:
        return
    orchestrator.status = WorkStatus.SKIPPED
    orchestrator.completed_at = utcnow()
    db.session.flush()
    _fan_out_concepts(build, orchestrator)
    db.session.execute(update(Build).where(Build.id == build.id).values(current_stage="sub-concepts"))


def _set_counters(build: Build, counters: dict[str, int], stage: str) -> None:
    db.session.execute(update(Build).where(Build.id == build.id).values(current_stage=stage, **counters))


# --- decompose: one concept into sub-concepts --------------------------------------------


def decompose_concept(step_id: int) -> str:
    """Break one concept into sub-concepts, then one knowledge-unit step per sub-concept."""
    return STEP.run(step_id, _produce_sub_concepts)


def _produce_sub_concepts(step: BuildStep, work: claims.Claim) -> list[tuple[int, str]]:
    concept = db.session.get_one(Concept, step.entity_id)
    path = concept.path
    brief = ConceptBrief(
        path_name=path.name,
        topic=path.topic,
        concept_name=concept.name,
        concept_description=concept.description,
        position=concept.position,
        total_concepts=db.session.execute(
            select(func.count(Concept.id)).where(Concept.path_id == path.id)
        ).scalar_one(),
    )
    drafts = _generate(work, step, "sub-concepts", lambda g, p: g.sub_concepts(brief, p))
    if not claims.mark_completed(work, children_total=len(drafts)):
        db.session.rollback()
        return []
    db.session.query(SubConcept).filter_by(concept_id=concept.id).delete()
    subs = [
        SubConcept(concept_id=concept.id, position=i, name=d.name, description=d.description)
        for i, d in enumerate(drafts)
    ]
    db.session.add_all(subs)
    concept.decomposed_at = utcnow()
    db.session.flush()
    status = child_status(step.build_id)
    children = insert_steps(
        [
            new_step(step.build_id, StepType.KNOWLEDGE_UNITS, sub.id, sub.name, step.id, sub.position, status)
            for sub in subs
        ]
    )
    bump(
        step.build_id,
        completed_concepts=1,
        total_sub_concepts=len(subs),
        sub_concepts_ms=claims.elapsed_ms(work),
    )
    set_stage(step.build_id, "knowledge-units")
    add_event(
        step.build_id,
        "progress",
        stage="sub-concepts",
        item=concept.name,
        status="completed",
        count=len(subs),
    )
    commit_keeping_loaded()  # the step's fields are read again to chain: no SELECT for them
    return children


# --- knowledge units for one sub-concept -------------------------------------------------


def generate_knowledge_units(step_id: int) -> str:
    """Generate one sub-concept's knowledge units."""
    return STEP.run(step_id, _produce_knowledge_units)


def _produce_knowledge_units(step: BuildStep, work: claims.Claim) -> list[tuple[int, str]]:
    # One SELECT for the three rows' fields (loading sub.concept, then concept.path, was two more).
    sub, concept_name, topic = db.session.execute(
        select(SubConcept, Concept.name, LearningPath.topic)
        .join(Concept, SubConcept.concept_id == Concept.id)
        .join(LearningPath, Concept.path_id == LearningPath.id)
        .where(SubConcept.id == step.entity_id)
    ).one()
    brief = SubConceptBrief(
        topic=topic,
        concept_name=concept_name,
        sub_concept_name=sub.name,
        sub_concept_description=sub.description,
        position=sub.position,
    )
    drafts = _generate(work, step, "knowledge-units", lambda g, p: g.knowledge_units(brief, p))
    if not claims.mark_completed(work):
        db.session.rollback()
        return []
    db.session.query(KnowledgeUnit).filter_by(sub_concept_id=sub.id).delete()
    db.session.add_all(
        KnowledgeUnit(sub_concept_id=sub.id, position=i, title=d.title, kind=d.kind, content=d.content)
        for i, d in enumerate(drafts)
    )
    sub.units_generated_at = utcnow()
    bump(
        step.build_id,
        completed_sub_concepts=1,
        total_knowledge_units=len(drafts),
        completed_knowledge_units=len(drafts),
        knowledge_units_ms=claims.elapsed_ms(work),
    )
    if step.parent_step_id is not None:
        db.session.execute(
            update(BuildStep)
            .where(BuildStep.id == step.parent_step_id)
            .values(children_done=BuildStep.children_done + 1)
        )
    add_event(
        step.build_id,
        "progress",
        stage="knowledge-units",
        item=sub.name,
        status="completed",
        count=len(drafts),
    )
    commit_keeping_loaded()  # the step's fields are read again to chain: no SELECT for them
    return []


STEP_FUNCTIONS: dict[StepType, Callable[[int], str]] = {
    StepType.CONCEPTS: generate_concepts,
    StepType.SUB_CONCEPTS: decompose_concept,
    StepType.KNOWLEDGE_UNITS: generate_knowledge_units,
}
