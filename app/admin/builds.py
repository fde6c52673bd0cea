"""One build for admins: its steps as a tree with attempts, durations and full errors, and a
timeline of when each step ran."""

from __future__ import annotations

from collections import defaultdict

from flask import render_template
from flask.typing import ResponseReturnValue
from flask_login import current_user
from sqlalchemy import select

from app.access import owned_build
from app.admin import bp
from app.admin.timeline import timeline_svg
from app.extensions import db
from app.models import BuildStep, WorkStatus
from app.pipelines.learning_paths.status import build_summary


@bp.get("/builds/<build_id>")
def build(build_id: str) -> ResponseReturnValue:
    """Show a build's step tree, its timeline and its errors."""
    build = owned_build(build_id, current_user)
    steps = db.session.scalars(
        select(BuildStep).where(BuildStep.build_id == build.id).order_by(BuildStep.id)
    ).all()
    children: dict[int | None, list[BuildStep]] = defaultdict(list)
    for step in steps:
        children[step.parent_step_id].append(step)
    for siblings in children.values():
        siblings.sort(key=lambda s: (s.position, s.id))
    return render_template(
        "admin/build.html",
        build=build,
        summary=build_summary(build),
        roots=children[None],
        children=children,
        failed=[s for s in steps if s.status == WorkStatus.FAILED],
        timeline=timeline_svg(list(steps)),
    )
