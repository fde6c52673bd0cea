"""The JSON API: every route needs `Authorization: Bearer <token>`."""

from __future__ import annotations

from flask import Blueprint, g, request
from sqlalchemy import select

from app.errors import ApiError
from app.extensions import db
from app.models import ApiToken
from app.models.users import hash_token

bp = Blueprint("api", __name__, url_prefix="/api")


@bp.before_request
def authenticate() -> None:
    """Resolve the bearer token to a user, or refuse with 401."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "unauthorized", "Send 'Authorization: Bearer <token>'.")
    api_token = db.session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token.strip())))
    if api_token is None:
        raise ApiError(401, "unauthorized", "The token is not valid.")
    g.user = api_token.user


from app.api import dead_letters, exports, jobs, learning_paths, stream, workflows  # noqa: E402,F401
