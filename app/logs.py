"""Logging: one line per event, carrying the ids of what it concerns.

Job code sets the context (`log_context(build=…, step=…)`); every record logged meanwhile, ours
or RQ's, carries it. LOG_FORMAT=json writes one JSON object per line for machines; the default
is readable text.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

_context: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("log_context", default={})  # noqa: B039


_inside_block: contextvars.ContextVar[bool] = contextvars.ContextVar("inside_log_context", default=False)


@contextmanager
def log_context(**ids: Any) -> Iterator[None]:
    """Add ids (build, workflow, step, job, attempt) to every record logged inside the block."""
    token = _context.set({**_context.get(), **{k: v for k, v in ids.items() if v is not None}})
    inside = _inside_block.set(True)
    try:
        yield
    finally:
        _inside_block.reset(inside)
        _context.reset(token)


def add_to_context(**ids: Any) -> None:
    """Add ids to the current `log_context` block (the job's); outside one it does nothing, so
    a job function called directly (a test, a shell) leaves no ids on later, unrelated lines."""
    if _inside_block.get():
        _context.set({**_context.get(), **{k: v for k, v in ids.items() if v is not None}})


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.ids = dict(_context.get())
        return True


# C0/C1 controls, DEL, line and paragraph separators, bidi overrides: what can fake a new line
# or hide text on a terminal. A path named "x\n2026-… ERROR …" must stay on its own line.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
TRACEBACK_PREFIX = "  | "


def escape_controls(value: object) -> str:
    """`value` as text with every control character written as an escape (\\n, \\x1b, \\u2028)."""
    return _CONTROL.sub(lambda m: _NAMED.get(m[0]) or ascii(m[0])[1:-1], str(value))


class TextFormatter(logging.Formatter):
    """One line per record, whatever its values hold; a traceback follows on lines that all
    start with TRACEBACK_PREFIX, so none of them can pass for a record."""

    def format(self, record: logging.LogRecord) -> str:
        record.message = record.getMessage()
        record.asctime = self.formatTime(record, self.datefmt)
        line = escape_controls(self.formatMessage(record))
        ids = getattr(record, "ids", {})
        if ids:
            line += f" [{' '.join(f'{escape_controls(k)}={escape_controls(v)}' for k, v in ids.items())}]"
        details = self.formatException(record.exc_info) if record.exc_info else ""
        if record.stack_info:
            details = f"{details}\n{self.formatStack(record.stack_info)}".strip("\n")
        for detail in details.splitlines():
            line += f"\n{TRACEBACK_PREFIX}{escape_controls(detail)}"
        return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **getattr(record, "ids", {}),
        }
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str, fmt: str) -> None:
    """Replace the root handlers with one that adds the context (RQ's loggers propagate here)."""
    handler = logging.StreamHandler()
    handler.addFilter(ContextFilter())
    handler.setFormatter(
        JsonFormatter() if fmt == "json" else TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("rq.worker", "rq.scheduler", "rq.job", "rq.queue"):
        rq_logger = logging.getLogger(name)
        rq_logger.handlers[:] = []
        rq_logger.propagate = True
