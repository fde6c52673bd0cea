"""Input that cannot be stored or counted is refused at the door, once, for every route.

- Whole numbers from a URL, a query string or a header are ASCII digits within a 64-bit signed
  integer (the widest column either database has); anything else is not a number to us.
- Text may not hold NUL (PostgreSQL cannot store it) nor a lone surrogate (no database can
  encode it): such a request is answered 422 before any view runs, on SQLite as on PostgreSQL.
- JSON nested too deeply for the parser is invalid JSON (a 400), not a RecursionError.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

from flask import Flask, Response, request
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import BadRequest
from werkzeug.routing import IntegerConverter

from app.errors import ApiError

MAX_ID = 2**63 - 1  # BIGINT / SQLite INTEGER
_DIGITS = re.compile(r"[0-9]{1,19}")
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def bounded_int(raw: str | None, low: int = 0, high: int = MAX_ID) -> int | None:
    """`raw` as an int in [low, high] if it is plain ASCII digits, else None.

    `str.isdigit()` and `int()` accept '²' or '٣'; SQL drivers overflow past 64 bits.
    """
    if raw is None or not _DIGITS.fullmatch(raw):
        return None
    value = int(raw)
    return value if low <= value <= high else None


class BoundedIntConverter(IntegerConverter):
    """`<int:…>` in every route: ASCII digits up to MAX_ID, else the route does not match (404)."""

    regex = r"[0-9]+"

    def __init__(
        self, map: Any, fixed_digits: int = 0, min: int | None = None, max: int | None = None
    ) -> None:
        super().__init__(map, fixed_digits, min, MAX_ID if max is None or max > MAX_ID else max)


class DepthSafeJSONProvider(DefaultJSONProvider):
    """Flask's JSON, where a document too deep to parse is a ValueError (so a 400), not a 500."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        try:
            return super().loads(s, **kwargs)
        except RecursionError:
            raise ValueError("JSON nested too deeply") from None


def _strings_in(value: Any) -> Iterator[str]:
    """Every string in a parsed JSON document, keys included, without recursion."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)


def _submitted_text() -> Iterable[str]:
    yield request.path
    for key, value in request.args.items(multi=True):
        yield from (key, value)
    if request.is_json or request.path.startswith("/api/"):
        yield from _strings_in(request.get_json(force=True, silent=True))
    elif request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        for key, value in request.form.items(multi=True):
            yield from (key, value)


def _is_form_like(document: Any) -> bool:
    """What a page's form can take as JSON (Flask-WTF reads it as form data): {name: text}."""
    return isinstance(document, dict) and all(
        isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value))
        for value in document.values()
    )


def refuse_unreadable_form_json() -> None:
    """A page's form posted as JSON must be flat text fields: anything else would crash its form."""
    if request.method != "GET" and request.is_json and not request.path.startswith("/api/"):
        if not _is_form_like(request.get_json(silent=True)):
            raise BadRequest("A form posted as JSON must be an object of text fields.")


def refuse_unstorable_text() -> Response | None:
    """422 for a request carrying NUL or a lone surrogate anywhere we would read it."""
    if not any(_UNSTORABLE.search(text) for text in _submitted_text()):
        return None
    message = "The request contains a NUL character or an invalid Unicode character; remove it."
    if request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json":
        raise ApiError(422, "validation_error", message)
    return Response(message, status=422, mimetype="text/plain")


def register_input_guards(app: Flask) -> None:
    """Install the converter and JSON parser before any route exists, and the text check."""
    app.url_map.converters["int"] = BoundedIntConverter
    app.json = DepthSafeJSONProvider(app)
    app.before_request(refuse_unstorable_text)
    app.before_request(refuse_unreadable_form_json)
