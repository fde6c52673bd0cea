"""The pages: sign-in required; each page's live region is also served alone as an HTMX
fragment (same template, included by the page), so its markup exists once."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, render_template
from flask_login import login_required
from htmx_flask import request  # flask.request, typed with the .htmx that the Htmx extension adds

bp = Blueprint("web", __name__)


@bp.before_request
@login_required
def require_sign_in() -> None:
    """Every page needs a signed-in person; anonymous visitors go to sign-in."""


def page_or_fragment(page: str, fragment: str, **context: Any) -> str:
    """The whole page, or only its live region when HTMX asks for it."""
    context.setdefault("poll_s", current_app.config["POLL_INTERVAL_S"])
    return render_template(fragment if request.htmx else page, **context)


def swap_whole(selector: str) -> dict[str, str]:
    """Headers that make HTMX put the response in place of `selector` (the live region's
    stream wrapper, so its stream follows the work an action just started or ended)."""
    return {"HX-Retarget": selector, "HX-Reswap": "outerHTML"}


from app.web import exports, home, paths, workflows  # noqa: E402,F401  (routes register on bp)
