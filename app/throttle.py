"""Throttles on guessing: failed sign-ins per account and per client address, failed API token
checks per address. Flask-Limiter's moving windows live in the shared Redis, so every gunicorn
process on every machine counts the same failures."""

from __future__ import annotations

import hashlib
import math
import time

from flask import Flask, Response, current_app, request
from flask_limiter.util import get_remote_address
from flask_login import current_user
from limits import RateLimitItem, parse, parse_many
from werkzeug.middleware.proxy_fix import ProxyFix

from app.extensions import limiter
from app.jobs.queues import connect_redis

LIMIT_SETTINGS = (
    "SIGNIN_FAILURE_LIMIT_PER_ACCOUNT",
    "SIGNIN_FAILURE_LIMIT_PER_ADDRESS",
    "API_TOKEN_FAILURE_LIMIT",
)
KEY_PREFIX = "curriculum-builder:throttle"
TOKEN_FAILURE_SCOPE = "api-token-failure"


def init_throttle(app: Flask) -> None:
    """Point the limiter at the shared Redis; a limit that does not parse stops the app with its name."""
    for name in LIMIT_SETTINGS:
        try:
            parse_many(app.config[name])
        except ValueError as exc:
            raise ValueError(
                f"{name}={app.config[name]!r} is not a rate limit like '10 per 15 minutes'"
            ) from exc
    # The storage runs on a pool from connect_redis, so it follows a Sentinel failover too.
    app.config["RATELIMIT_STORAGE_URI"] = app.config["REDIS_URL"]
    redis = connect_redis(app.config, socket_timeout=5)
    app.config["RATELIMIT_STORAGE_OPTIONS"] = {"connection_pool": redis.connection_pool}
    app.config["RATELIMIT_KEY_PREFIX"] = KEY_PREFIX
    limiter.init_app(app)
    if app.config["TRUSTED_PROXY_HOPS"] > 0:  # else X-Forwarded-For is the client's word: ignored
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=app.config["TRUSTED_PROXY_HOPS"])  # type: ignore[method-assign]


def signin_limit_per_account() -> str:
    return str(current_app.config["SIGNIN_FAILURE_LIMIT_PER_ACCOUNT"])


def signin_limit_per_address() -> str:
    return str(current_app.config["SIGNIN_FAILURE_LIMIT_PER_ADDRESS"])


def _account_key(email: str) -> str:
    """Hashed: the key stays short and neither Redis nor a log line holds what was typed."""
    return "account:" + hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]


def posted_email() -> str:
    """The account a sign-in is for, as the form names it (an unknown one is counted alike)."""
    return _account_key(request.form.get("email", ""))


def signed_in_account() -> str:
    """The same account key for a password check made while signed in (the password form)."""
    return _account_key(current_user.email)


def is_failed_sign_in(response: Response) -> bool:
    return response.status_code == 422


def seconds_until_allowed() -> int:
    """Retry-After for the limit this request breached."""
    breached = limiter.current_limit
    if breached is None:
        return 60
    return _seconds_until(breached.reset_at, breached.limit.get_expiry())


def _token_failure_limit() -> RateLimitItem:
    return parse(current_app.config["API_TOKEN_FAILURE_LIMIT"])


def count_token_failure() -> int | None:
    """Count one failed token check from this address; None while under the limit, else the
    seconds until another check is allowed."""
    item, keys = _token_failure_limit(), (KEY_PREFIX, TOKEN_FAILURE_SCOPE, get_remote_address())
    if limiter.limiter.hit(item, *keys):
        return None
    reset_at = limiter.limiter.get_window_stats(item, *keys).reset_time
    return _seconds_until(reset_at, item.get_expiry())


def _seconds_until(reset_at: float, window_s: int) -> int:
    """Whole seconds until `reset_at`, never past the window (the store rounds its stamps)."""
    return min(window_s, max(1, math.ceil(reset_at - time.time())))
