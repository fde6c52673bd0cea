"""Starting, admitting, cancelling, pausing, resuming and retrying builds.

Every transition is a compare-and-set on the build's status, so two requests racing for the
same change cannot both make it.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import current_app
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from app.database import execute_dml, utcnow
from app.extensions import db
from app.jobs.enqueue import discard_job
from app.models import (
    Build,
    BuildStatus,
    BuildStep,
    Concept,
    DeadLetter,
    LearningPath,
    SubConcept,
    WorkStatus,
)
from app.models.statuses import ACTIVE_BUILD, FINAL, FINAL_BUILD
from app.pipelines.learning_paths.admission import admit_waiting_builds, lock_user
from app.pipelines.learning_paths.events import add_event, ring
from app.pipelines.learning_paths.queueing import queue_owed_steps
from app.pipelines.learning_paths.step_rows import step_job_id
from app.pipelines.learning_paths.steps import plan_build
from app.pipelines.learning_paths.tree import tree_is_complete
from app.pipelines.learning_paths.tree_snapshot import snapshot_tree

log = logging.getLogger(__name__)


class BuildConflict(Exception):
    """The path already has an active build."""

    def __init__(self, active_build_id: str) -> None:
        super().__init__(f"Build already in progress for this path. Job ID: {active_build_id}")
        self.active_build_id = active_build_id


class InvalidTransition(Exception):
    """The build's status does not allow the change asked for."""


class UnknownPiece(Exception):
    """The concept or sub-concept asked for is not part of this path."""


SCOPE_KIND: dict[type, str] = {Concept: "concept", SubConcept: "sub-concept"}


class QuotaExceeded(Exception):
    """The user already holds as many builds (waiting, or active) as a setting allows."""


def active_build(path_id: str) -> Build | None:
    return db.session.scalar(select(Build).where(Build.path_id == path_id, Build.status.in_(ACTIVE_BUILD)))


def start_build(
    path: LearningPath, user_id: int, fresh: bool = False, piece: Concept | SubConcept | None = None
) -> Build:
    """Create a build with its first steps, then admit it if the user has a free slot.

    `fresh` regenerates the whole tree, asking the model again instead of reusing answers;
    `piece` (a concept of the path, or a sub-concept) regenerates that piece alone, afresh,
    leaving the rest of the tree untouched.

    Raises BuildConflict when the path has an active build (a partial unique index decides,
    so of twenty concurrent requests exactly one gets through).
    """
    if isinstance(piece, Concept):
        piece.decomposed_at = None  # owed again: its step regenerates its sub-concepts and units
    elif isinstance(piece, SubConcept):
        piece.units_generated_at = None
    elif fresh:
        path.concepts_generated_at = None  # the orchestrator regenerates, replacing the old tree
        return _create_build(path, user_id, None, True, None, previous_tree=snapshot_tree(path))
    return _create_build(path, user_id, None, fresh or piece is not None, piece)


def _create_build(
    path: LearningPath,
    user_id: int,
    retry_of: str | None,
    fresh: bool,
    piece: Concept | SubConcept | None,
    previous_tree: list[dict[str, Any]] | None = None,
) -> Build:
    """Insert the build and plan its steps in one transaction (rolled back, resets included,
    on a conflict), then admit waiting builds."""
    lock_user(user_id)  # before the insert: its foreign-key lock on the user would deadlock
    build = Build(
        path_id=path.id,
        triggered_by=user_id,
        retry_of=retry_of,
        force_fresh=fresh,
        scope_kind=SCOPE_KIND.get(type(piece)),
        scope_entity_id=piece.id if piece is not None else None,
        previous_tree=previous_tree,
    )
    db.session.add(build)
    try:
        db.session.flush()
        _refuse_over_pending_quota(user_id)
        plan_build(build, piece)
        add_event(build.id, "progress", stage="concepts", status="queued")
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        existing = active_build(path.id)
        raise BuildConflict(existing.id if existing else "unknown") from None
    admit_waiting_builds(user_id)
    return build


def find_piece(path: LearningPath, kind: str, entity_id: int) -> Concept | SubConcept:
    """The path's concept or sub-concept with this id; UnknownPiece if the path has none."""
    piece: Concept | SubConcept | None
    if kind == "concept":
        piece = db.session.scalar(select(Concept).where(Concept.id == entity_id, Concept.path_id == path.id))
    else:
        piece = db.session.scalar(
            select(SubConcept).join(Concept).where(SubConcept.id == entity_id, Concept.path_id == path.id)
        )
    if piece is None:
        raise UnknownPiece(f"This learning path has no {kind} {entity_id}.")
    return piece


def _refuse_over_pending_quota(user_id: int) -> None:
    """Counted after the new build is written, under the user's row lock (PostgreSQL) or the
    writer lock the insert took (SQLite), so concurrent starts serialize and none slips past."""
    limit = current_app.config["MAX_PENDING_BUILDS_PER_USER"]
    pending = db.session.scalar(
        select(func.count(Build.id)).where(Build.triggered_by == user_id, Build.status == BuildStatus.PENDING)
    )
    if pending > limit:
        db.session.rollback()
        raise QuotaExceeded(
            f"You already have {limit} builds waiting to start (the most allowed); "
            "start more when some of them have run."
        )


def _refuse_over_active_quota(user_id: int | None) -> None:
    """Like the pending quota, for a build reopened to processing (a dead-letter retry)."""
    if user_id is None:
        return
    limit = current_app.config["MAX_ACTIVE_BUILDS_PER_USER"]
    active = db.session.scalar(
        select(func.count(Build.id)).where(
            Build.triggered_by == user_id,
            Build.status.in_([BuildStatus.PROCESSING, BuildStatus.PAUSED]),
        )
    )
    if active > limit:
        db.session.rollback()
        raise QuotaExceeded(
            f"This build's owner already has {limit} builds running or paused (the most allowed); "
            "retry the dead letter when one of them has finished."
        )


def cancel_build(build: Build) -> None:
    """Stop the build: queued steps never start, running ones are interrupted, and nothing
    new is enqueued (every step still owed is marked cancelled in the same transaction)."""
    # Steps first, then the build: the order every step's own transaction takes too, so
    # PostgreSQL's row locks cannot deadlock the two.
    db.session.execute(
        update(BuildStep)
        .where(BuildStep.build_id == build.id, BuildStep.status.not_in(FINAL))
        .values(
            status=WorkStatus.CANCELLED,
            error_category="cancelled",
            error="cancelled by request",
            completed_at=utcnow(),
            lease_expires_at=None,
        )
    )
    cancelled = execute_dml(
        update(Build)
        .where(Build.id == build.id, Build.status.in_(ACTIVE_BUILD))
        .values(status=BuildStatus.CANCELLED, completed_at=utcnow(), current_stage=None)
    ).rowcount
    if not cancelled:
        db.session.rollback()
        raise InvalidTransition(f"A {build.status} build cannot be cancelled.")
    add_event(build.id, "completed", status=BuildStatus.CANCELLED, error=None)
    db.session.commit()
    ring(build.id)
    if build.triggered_by is not None:
        admit_waiting_builds(build.triggered_by)


def pause_build(build: Build) -> None:
    """No new step starts; running steps finish and their children wait."""
    _transition(build, BuildStatus.PROCESSING, BuildStatus.PAUSED, "paused")


def resume_build(build: Build) -> None:
    """Continue where the build stopped: every step still owed is queued again."""
    _transition(build, BuildStatus.PAUSED, BuildStatus.PROCESSING, "resumed")
    queue_owed_steps(build.id)


def _transition(build: Build, source: BuildStatus, target: BuildStatus, word: str) -> None:
    changed = execute_dml(
        update(Build).where(Build.id == build.id, Build.status == source).values(status=target)
    ).rowcount
    if not changed:
        db.session.rollback()
        raise InvalidTransition(f"Only a {source} build can be {word}; this one is {build.status}.")
    add_event(build.id, "progress", stage=build.current_stage, status=word)
    db.session.commit()
    ring(build.id)


def retry_build(build: Build, user_id: int) -> Build:
    """A new build of the same path that re-runs only what did not complete."""
    if build.status not in (BuildStatus.FAILED, BuildStatus.CANCELLED):
        raise InvalidTransition(
            f"Only a failed or cancelled build can be retried; this one is {build.status}."
        )
    piece = None
    if build.scope_kind is not None:
        try:
            piece = find_piece(build.path, build.scope_kind, build.scope_entity_id or 0)
        except UnknownPiece:
            raise InvalidTransition(
                f"The {build.scope_kind} this build regenerated is gone (the path was regenerated since)."
            ) from None
    if piece is None and not build.force_fresh and tree_is_complete(build.path):
        raise InvalidTransition(
            "Nothing is left to retry: every part of this path has been generated since. "
            "Regenerate asks the model again."
        )
    # The same scope and the same freshness: a retried regenerate must not reuse old answers.
    return _create_build(build.path, user_id, build.id, build.force_fresh, piece)


def retry_dead_letter(letter: DeadLetter) -> None:
    """Run one dead step again; its build reopens if it had finished, within its owner's
    MAX_ACTIVE_BUILDS_PER_USER (QuotaExceeded otherwise, and nothing changes)."""
    step = letter.step
    build = db.session.get_one(Build, letter.build_id)
    if build.status == BuildStatus.CANCELLED or step.status != WorkStatus.FAILED:
        raise InvalidTransition(
            f"This step is {step.status} in a {build.status} build; it cannot be retried."
        )
    if build.status in FINAL_BUILD:
        if build.triggered_by is not None:
            lock_user(build.triggered_by)
        try:
            db.session.execute(
                update(Build)
                .where(Build.id == build.id, Build.status.in_(FINAL_BUILD))
                .values(status=BuildStatus.PROCESSING, completed_at=None, error=None)
            )
        except IntegrityError:  # the path has another active build: it owns the path now
            db.session.rollback()
            existing = active_build(build.path_id)
            raise BuildConflict(existing.id if existing else "unknown") from None
        _refuse_over_active_quota(build.triggered_by)
    requeued = execute_dml(
        update(BuildStep)
        .where(BuildStep.id == step.id, BuildStep.status == WorkStatus.FAILED)
        .values(
            status=WorkStatus.PENDING,
            failed_attempts=0,
            worker_losses=0,
            error=None,
            error_category=None,
            traceback=None,
            completed_at=None,
        )
    ).rowcount
    if not requeued:
        db.session.rollback()
        raise InvalidTransition("This dead letter was retried already.")
    letter.retried_at = utcnow()
    db.session.execute(update(Build).where(Build.id == build.id).values(error_count=Build.error_count - 1))
    add_event(build.id, "progress", stage=step.type, item=step.entity_name, status="retrying")
    db.session.commit()
    discard_job(step_job_id(step.id))
    queue_owed_steps(build.id)
    ring(build.id)
