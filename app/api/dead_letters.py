"""Steps that failed for good: listed, and retried one by one."""

from __future__ import annotations

from flask import g, jsonify
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from app.api import bp
from app.api.schemas import query_int
from app.errors import ApiError
from app.extensions import db
from app.models import BuildJob, DeadLetter, LearningPath
from app.pipelines.learning_paths import control as build_control


def _visible_letters():  # type: ignore[no-untyped-def]
    query = select(DeadLetter).join(BuildJob).join(LearningPath)
    return query if g.user.is_admin else query.where(LearningPath.owner_id == g.user.id)


@bp.get("/dead-letter")
def list_dead_letters():  # type: ignore[no-untyped-def]
    """List dead letters, newest first."""
    limit = query_int("limit", 100, 1, 500)
    query = _visible_letters().options(joinedload(DeadLetter.step)).order_by(DeadLetter.id.desc())
    letters = db.session.scalars(query.limit(limit))
    return jsonify([letter.to_dict() for letter in letters])


@bp.post("/dead-letter/<int:letter_id>/retry")
def retry_dead_letter(letter_id: int):  # type: ignore[no-untyped-def]
    """Run the dead step again (its build reopens if it had finished)."""
    letter = db.session.scalar(_visible_letters().where(DeadLetter.id == letter_id))
    if letter is None:
        raise ApiError(404, "not_found", f"No dead letter {letter_id}.")
    try:
        build_control.retry_dead_letter(letter)
    except build_control.InvalidTransition as exc:
        raise ApiError(400, "invalid_state", str(exc)) from None
    except build_control.BuildConflict as exc:
        raise ApiError(409, "build_in_progress", str(exc), {"jobId": exc.active_build_id}) from None
    except build_control.QuotaExceeded as exc:
        raise ApiError(429, "too_many_builds", str(exc)) from None
    return {"success": True, "stepId": letter.step_id, "jobId": letter.build_id}, 202
