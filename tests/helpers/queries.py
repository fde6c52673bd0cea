"""Counting the SQL statements a request sends, to prove a page or an answer costs a bounded number."""

from __future__ import annotations

from typing import Any

from flask import Flask
from sqlalchemy import event

from app.extensions import db


class QueryCounter:
    """Counts the SQL statements the app sends while it is active."""

    def __init__(self, app: Flask) -> None:
        with app.app_context():
            self.engine = db.engine
        self.count = 0

    def _hit(self, *_: Any) -> None:
        self.count += 1

    def __enter__(self) -> QueryCounter:
        event.listen(self.engine, "before_cursor_execute", self._hit)
        return self

    def __exit__(self, *_: Any) -> None:
        event.remove(self.engine, "before_cursor_execute", self._hit)
