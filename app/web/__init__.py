"""Server-rendered pages."""

from __future__ import annotations

from flask import Blueprint, render_template

bp = Blueprint("web", __name__)


@bp.get("/")
def index():  # type: ignore[no-untyped-def]
    """Show what is running and how to use it."""
    return render_template("web/index.html")
