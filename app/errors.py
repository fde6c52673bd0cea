"""Errors as JSON for the API (the right status and {"success": false, "error": {code, message}})
and as a styled page, inside the layout, for a person's browser."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, current_app, g, jsonify, render_template, request
from flask.typing import ResponseReturnValue
from redis.exceptions import RedisError
from sqlalchemy.exc import InterfaceError, OperationalError
from werkzeug.exceptions import HTTPException

from app.extensions import db, login_manager

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error the API answers with `status` and a stable machine-readable `code`."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details


def error_response(status: int, code: str, message: str, details: Any = None) -> tuple[Response, int]:
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return jsonify({"success": False, "error": error}), status


# What a person is told, by status: a title and one plain sentence.
PAGE_WORDS: dict[int, tuple[str, str]] = {
    400: (
        "That request could not be used",
        "The form may have expired: go back, reload the page and try again.",
    ),
    403: (
        "Not allowed",
        "Your account may not see this page. Sign in as someone who may, or go back home.",
    ),
    404: (
        "Page not found",
        "There is nothing here: the link may be wrong, or what it pointed to is gone.",
    ),
    405: (
        "Not that way",
        "This address does not answer that kind of request: use the page's links and buttons.",
    ),
    413: (
        "Too much at once",
        "What you sent is larger than this site accepts ({limit}): send something shorter.",
    ),
    500: ("Something went wrong on our side", "It has been logged. Please try again in a moment."),
    503: ("Unavailable for a moment", "Part of the service is not answering. Please try again in a moment."),
}
QUEUE_DOWN = (
    "The job queue (Redis) is not answering. What you saved stays saved, and work waiting to run "
    "starts once it is back. Please try again in a moment."
)
DATABASE_DOWN = "The database is not answering, so nothing was read or changed. Please try again in a moment."


def missing_dead_letter(letter_id: int) -> str:
    """One sentence for a dead letter that is not there, said alike by the API and the page."""
    return (
        f"There is no dead letter {letter_id}: it was removed with its build, or it is not yours to see. "
        "The dead-letter list shows those that remain."
    )


def _wants_json() -> bool:
    return (
        request.path.startswith("/api/")
        or request.path.endswith(".json")  # rq-dashboard's data routes, read by its scripts
        or request.accept_mimetypes.best == "application/json"
    )


def error_page(
    status: int, sentence: str | None = None, account: bool = True, title: str | None = None
) -> tuple[str, int]:
    """The styled page for `status`; `account=False` when the database cannot name the user."""
    if not account:  # Flask-Login's context processor would ask the database who is signed in
        g._login_user = login_manager.anonymous_user()
    default_title, default = PAGE_WORDS.get(
        status, ("Something is not right", "Please go back and try again.")
    )
    limit = current_app.config.get("MAX_CONTENT_LENGTH") or 0
    body = render_template(
        "errors/error.html",
        status=status,
        title=title or default_title,
        sentence=sentence or default.format(limit=f"{limit // 1024} KB"),
        show_account=account,
        retry_url=request.full_path.rstrip("?") if request.method == "GET" else None,
    )
    return body, status


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> ResponseReturnValue:
        return error_response(exc.status, exc.code, exc.message, exc.details)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> ResponseReturnValue:
        # The exception's own headers stay (a 405's Allow, a 429's Retry-After); its body does not.
        headers = [(name, value) for name, value in exc.get_headers() if name.lower() != "content-type"]
        if not _wants_json():
            return (*error_page(exc.code or 500), headers)
        code = (exc.name or "error").lower().replace(" ", "_")
        return (*error_response(exc.code or 500, code, exc.description or exc.name), headers)

    @app.errorhandler(OperationalError)
    @app.errorhandler(InterfaceError)
    def _database_down(exc: Exception) -> ResponseReturnValue:
        log.error("database unavailable: %s", exc)
        db.session.rollback()
        if not _wants_json():
            return error_page(503, DATABASE_DOWN, account=False)
        return error_response(503, "database_unavailable", "The database is unavailable; try again shortly.")

    @app.errorhandler(RedisError)
    def _redis_down(exc: RedisError) -> ResponseReturnValue:
        log.error("Redis unavailable: %s", exc)
        if not _wants_json():
            return error_page(503, QUEUE_DOWN)
        return error_response(
            503,
            "queue_unavailable",
            "The job queue (Redis) is unavailable; what was saved stays saved and "
            "owed work is queued once it is back.",
        )
