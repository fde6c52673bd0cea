"""Who may open an event stream: a Bearer token, as on every API route, or, on the stream routes
only, the signed-in page session, so a page's `new EventSource(url)` (which cannot send headers)
works.

A cookie rides along with requests other sites make (SameSite=Lax still sends it on a GET from
a page on another port of the same host), so a cookie-authenticated stream must come from this
site: `Sec-Fetch-Site` other than same-origin (or none: typed in the address bar) and an
`Origin` naming another host are refused with 403. No CORS headers are ever sent, so a browser
would not let another site read a stream anyway; the refusal also keeps such a request from
holding one of the user's stream slots.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import request
from flask_login import current_user

from app.errors import ApiError
from app.models import User

# Read-only routes that answer a page's EventSource: the only ones a session may call.
SESSION_STREAM_ENDPOINTS = frozenset({"api.stream_build", "api.stream_run", "api.stream_queue"})
SAME_SITE_FETCHES = frozenset({"same-origin", "none"})


def accepts_session() -> bool:
    """A request without a token, to a route that takes the page session instead."""
    return "Authorization" not in request.headers and request.endpoint in SESSION_STREAM_ENDPOINTS


def is_cross_site() -> bool:
    """Whether the browser says this request was made by a page of another origin."""
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None and fetch_site not in SAME_SITE_FETCHES:
        return True
    origin = request.headers.get("Origin")
    return origin is not None and urlsplit(origin).netloc != request.host


def session_user() -> User:
    """The signed-in user of a same-origin request, or the 401/403 to answer."""
    if is_cross_site():
        raise ApiError(403, "cross_site", "Event streams answer pages of this site only.")
    if not current_user.is_authenticated:
        raise ApiError(401, "unauthorized", "Sign in, or send 'Authorization: Bearer <token>'.")
    return current_user._get_current_object()  # type: ignore[no-any-return]
