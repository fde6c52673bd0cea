"""Engine settings: SQLite in WAL mode with a busy timeout, so several processes can write."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from typing import Any, cast

from flask import Flask
from sqlalchemy import event
from sqlalchemy.engine import CursorResult, Engine
from sqlalchemy.sql import Executable

from app.extensions import db

SQLITE_BUSY_TIMEOUT_MS = 30_000


def configure_engine_options(app: Flask) -> None:
    """A server database's connections get a health check at each checkout (a restarted
    PostgreSQL leaves every pooled connection dead); SQLite's, a file, cannot go stale, and the
    check cost a statement per checkout (steps check out a connection several times each).
    SQLite gets its driver timeout instead."""
    options = app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", {})
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        options.setdefault("connect_args", {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
    else:
        options.setdefault("pool_pre_ping", True)


@event.listens_for(Engine, "connect")
def _set_sqlite_pragmas(dbapi_connection: object, _record: object) -> None:
    if not isinstance(dbapi_connection, sqlite3.Connection):
        return
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def execute_dml(statement: Executable) -> CursorResult[Any]:
    """Run an UPDATE or DELETE in the session, for its rowcount: what Session.execute returns
    for one is a CursorResult, but it is annotated as a plain Result, which has no rowcount."""
    return cast(CursorResult[Any], db.session.execute(statement))


def commit_keeping_loaded() -> None:
    """Commit the session without expiring the rows it has loaded, so reading them next costs
    no SELECT: for rows whose values the transaction itself just wrote or returned."""
    session = db.session()
    expire_on_commit = session.expire_on_commit
    session.expire_on_commit = False
    try:
        session.commit()
    finally:
        session.expire_on_commit = expire_on_commit


def utcnow() -> datetime:
    """Naive UTC, the one form both SQLite and PostgreSQL columns give back unchanged."""
    return datetime.now(UTC).replace(tzinfo=None)


def isoformat(value: datetime | None) -> str | None:
    """The API's one timestamp format, e.g. 2026-11-25T13:04:05.123Z (ISO 8601, UTC, ms).

    Naive values are UTC already (see `utcnow`); aware ones are converted first.
    """
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.isoformat(timespec="milliseconds") + "Z"
