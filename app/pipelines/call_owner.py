"""Whose a generator call is, for the rate limit's fair turns: the user behind the build or
the workflow it is made for. Named like the release window's owners, so one user's builds and
lesson plans count as one owner at the limit."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from app.extensions import db
from app.models import Build, Workflow


def owner_key(user_id: int | None, fallback: str) -> str:
    return f"user-{user_id}" if user_id is not None else fallback


def owner_of_call(ids: dict[str, Any]) -> str | None:
    """The owner of a call recorded with `ids` (build_id or workflow_id); None when neither."""
    if build_id := ids.get("build_id"):
        user_id = db.session.scalar(select(Build.triggered_by).where(Build.id == build_id))
        return owner_key(user_id, f"build-{build_id}")
    if workflow_id := ids.get("workflow_id"):
        user_id = db.session.scalar(select(Workflow.owner_id).where(Workflow.id == workflow_id))
        return owner_key(user_id, f"workflow-{workflow_id}")
    return None
