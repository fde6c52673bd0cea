"""Logging: one line per event, carrying the ids of what it concerns.

Job code sets the context (`log_context(build=…, step=…)`); every record logged meanwhile, ours
or RQ's, carries it. LOG_FORMAT=json writes one JSON object per line for machines; the default
is readable text.
"""

from __future__ import annotations

import contextvars
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

_context: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("log_context", default={})  # noqa: B039


@contextmanager
def log_context(**ids: Any) -> Iterator[None]:
    """Add ids (build, workflow, step, job, attempt) to every record logged inside the block."""
    token = _context.set({**_context.get(), **{k: v for k, v in ids.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


def add_to_context(**ids: Any) -> None:
    """Add ids to the current context (inside a `log_context` block)."""
    _context.set({**_context.get(), **{k: v for k, v in ids.items() if v is not None}})


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.ids = dict(_context.get())
        return True


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        ids = getattr(record, "ids", {})
        return f"{line} [{' '.join(f'{k}={v}' for k, v in ids.items())}]" if ids else line


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
