"""Steps that failed for good: listed, and retried one by one."""

from __future__ import annotations

from flask import g, jsonify
from flask.typing import ResponseReturnValue
from sqlalchemy import Select, select
from sqlalchemy.orm import joinedload

from app.access import visible_to
from app.api import bp
from app.api.control_errors import api_errors_of_build_control
from app.api.schemas import query_int
from app.errors import ApiError, missing_dead_letter
from app.extensions import db
from app.models import Build, DeadLetter, LearningPath
from app.pipelines.learning_paths import control as build_control
from app.seed_names import build_json, dead_letter_json


def _visible_letters() -> Select[DeadLetter]:
    query = select(DeadLetter).join(Build).join(LearningPath)
    return visible_to(g.user, query, LearningPath.owner_id)


@bp.get("/dead-letter")
def list_dead_letters() -> ResponseReturnValue:
    """List dead letters, newest first."""
    limit = query_int("limit", 100, 1, 500)
    query = _visible_letters().options(joinedload(DeadLetter.step)).order_by(DeadLetter.id.desc())
    letters = db.session.scalars(query.limit(limit))
    return jsonify([dead_letter_json(letter.to_dict()) for letter in letters])


@bp.post("/dead-letter/<int:letter_id>/retry")
def retry_dead_letter(letter_id: int) -> ResponseReturnValue:
    """Run the dead step again (its build reopens if it had finished)."""
    letter = db.session.scalar(_visible_letters().where(DeadLetter.id == letter_id))
    if letter is None:
        raise ApiError(404, "not_found", missing_dead_letter(letter_id))
    with api_errors_of_build_control():
        build_control.retry_dead_letter(letter)
    return build_json({"success": True, "stepId": letter.step_id, "buildId": letter.build_id}), 202
