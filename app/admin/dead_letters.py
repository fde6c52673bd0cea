"""Dead letters: the steps that failed for good, and retrying one."""

from __future__ import annotations

from flask import flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from app.admin import bp
from app.errors import error_page, missing_dead_letter
from app.extensions import db
from app.models import DeadLetter
from app.pipelines.learning_paths import control as build_control
from app.web.refusals import BUILD_REFUSALS


@bp.get("/dead-letters")
def dead_letters() -> ResponseReturnValue:
    """List the steps that failed for good, newest first."""
    letters = db.session.scalars(
        select(DeadLetter).options(selectinload(DeadLetter.step)).order_by(DeadLetter.id.desc()).limit(200)
    ).all()
    return render_template("admin/dead_letters.html", letters=letters)


@bp.post("/dead-letters/<int:letter_id>/retry")
def retry_dead_letter(letter_id: int) -> ResponseReturnValue:
    """Run one dead step again."""
    letter = db.session.get(DeadLetter, letter_id)
    if letter is None:
        return error_page(404, missing_dead_letter(letter_id), title="No such dead letter")
    try:
        build_control.retry_dead_letter(letter)
        flash(f"Dead letter {letter_id}: step queued again.")
    except BUILD_REFUSALS as exc:
        flash(f"Dead letter {letter_id}: {exc}")
    return redirect(url_for("admin.dead_letters"))
