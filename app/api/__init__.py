"""The JSON API: every route needs `Authorization: Bearer <token>` (the event streams also take
the signed-in page session: see stream_access)."""

from __future__ import annotations

from flask import Blueprint, g, request
from flask.typing import ResponseReturnValue

from app.api.stream_access import accepts_session, session_user
from app.errors import ApiError, error_response
from app.models import ApiToken
from app.throttle import count_token_failure

bp = Blueprint("api", __name__, url_prefix="/api")


@bp.before_request
def authenticate() -> ResponseReturnValue | None:
    """Resolve the bearer token to a user, or refuse with 401 (429 once an address has failed
    too often: the failures are counted, a valid token never waits on the count)."""
    if accepts_session():
        g.user = session_user()
        return None
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "unauthorized", "Send 'Authorization: Bearer <token>'.")
    api_token = ApiToken.find(token.strip())
    if api_token is None or api_token.has_expired():
        if retry_after := count_token_failure():
            response, status = error_response(
                429, "too_many_requests", f"Too many failed token checks; try again in {retry_after} s."
            )
            response.headers["Retry-After"] = str(retry_after)
            return response, status
        raise ApiError(
            401, "unauthorized", "The token has expired." if api_token else "The token is not valid."
        )
    api_token.note_use()
    g.user = api_token.user
    return None


from app.api import dead_letters, exports, jobs, learning_paths, stream, workflows  # noqa: E402,F401
