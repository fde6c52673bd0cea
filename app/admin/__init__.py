"""Admin pages: the job queue, one build's steps and timeline, dead letters, workers, RQ.

Guarded as a whole: anonymous visitors are sent to sign-in, signed-in non-admins get 403.
"""

from __future__ import annotations

from flask import Blueprint, abort
from flask_login import current_user, login_required

bp = Blueprint("admin", __name__, url_prefix="/admin")


def require_admin() -> None:
    if not current_user.is_admin:
        abort(403)


@bp.before_request
@login_required
def guard() -> None:
    """Admins only."""
    require_admin()


from app.admin import builds, dead_letters, queue, workers  # noqa: E402,F401  (routes register on bp)
