"""Errors as JSON for the API: the right status and {"success": false, "error": {code, message}}."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, jsonify, request
from redis.exceptions import RedisError
from sqlalchemy.exc import InterfaceError, OperationalError
from werkzeug.exceptions import HTTPException

from app.extensions import db

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error the API answers with `status` and a stable machine-readable `code`."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details


def error_response(status: int, code: str, message: str, details: Any = None):  # type: ignore[no-untyped-def]
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return jsonify({"success": False, "error": error}), status


def _wants_json() -> bool:
    return request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json"


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):  # type: ignore[no-untyped-def]
        return error_response(exc.status, exc.code, exc.message, exc.details)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):  # type: ignore[no-untyped-def]
        if not _wants_json():
            return exc
        code = (exc.name or "error").lower().replace(" ", "_")
        return error_response(exc.code or 500, code, exc.description or exc.name)

    @app.errorhandler(OperationalError)
    @app.errorhandler(InterfaceError)
    def _database_down(exc: Exception):  # type: ignore[no-untyped-def]
        log.error("database unavailable: %s", exc)
        db.session.rollback()
        if not _wants_json():
            return "The database is unavailable for a moment; please try again.", 503
        return error_response(503, "database_unavailable", "The database is unavailable; try again shortly.")

    @app.errorhandler(RedisError)
    def _redis_down(exc: RedisError):  # type: ignore[no-untyped-def]
        log.error("Redis unavailable: %s", exc)
        return error_response(
            503,
            "queue_unavailable",
            "The job queue (Redis) is unavailable; what was saved stays saved and "
            "owed work is queued once it is back.",
        )
