"""The text log format keeps one record on one line: control characters in any value it prints
(message, arguments, context ids, traceback) are escaped, so input cannot forge a log line."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator

import pytest

from app.logs import TRACEBACK_PREFIX, configure_logging, log_context

FORGED = "Stats\n2026-11-25 13:00:00,000 ERROR app.auth: admin@example.com signed in from 10.0.0.1"
RECORD_START = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ ")


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    """The app's own logging set-up (text format), writing into a buffer."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    configure_logging("INFO", "text")
    buffer = io.StringIO()
    root.handlers[0].setStream(buffer)  # type: ignore[attr-defined]
    yield buffer
    root.handlers[:] = saved_handlers
    root.setLevel(saved_level)


def _records(buffer: io.StringIO) -> list[str]:
    return [line for line in buffer.getvalue().splitlines() if RECORD_START.match(line)]


def test_a_newline_in_a_logged_name_cannot_forge_a_record(log_output: io.StringIO) -> None:
    logging.getLogger("app.pipelines").info("building path %s", FORGED)
    assert len(_records(log_output)) == 1
    assert "Stats\\n2026-11-25" in log_output.getvalue()


def test_context_ids_are_escaped_too(log_output: io.StringIO) -> None:
    with log_context(build="b1", step=FORGED, queue="q\r\x1b[2Kx"):
        logging.getLogger("rq.worker").info("job done")
    output = log_output.getvalue()
    assert len(_records(log_output)) == 1 and output.count("\n") == 1
    assert "q\\r\\x1b[2Kx" in output


def test_other_control_and_separator_characters_are_escaped(log_output: io.StringIO) -> None:
    logging.getLogger("app").warning("a\x00b\x85c\u2028d\u202ee\tf")
    line = log_output.getvalue().rstrip("\n")
    assert "\n" not in line
    assert line.endswith("a\\x00b\\x85c\\u2028d\\u202ee\\tf")


def test_a_traceback_follows_on_prefixed_lines_that_cannot_pass_for_records(log_output: io.StringIO) -> None:
    try:
        raise ValueError(FORGED)
    except ValueError:
        logging.getLogger("app.jobs").exception("step failed")
    lines = log_output.getvalue().splitlines()
    assert len(_records(log_output)) == 1
    assert len(lines) > 2 and all(line.startswith(TRACEBACK_PREFIX) for line in lines[1:])
    assert any("ValueError: Stats" in line for line in lines)


def test_the_json_format_keeps_one_record_per_line(log_output: io.StringIO) -> None:
    configure_logging("INFO", "json")
    buffer = io.StringIO()
    logging.getLogger().handlers[0].setStream(buffer)  # type: ignore[attr-defined]
    logging.getLogger("app").info("path %s", FORGED)
    lines = buffer.getvalue().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["message"].startswith("path Stats\n2026")


def test_ids_added_outside_a_job_do_not_stick_to_later_lines(caplog):
    from app.logs import add_to_context, log_context

    add_to_context(build="outside-any-job")  # a job function called directly, as a test does
    with log_context(job="j1"):
        add_to_context(build="b1")
        assert _ids() == {"job": "j1", "build": "b1"}
    assert _ids() == {}


def _ids() -> dict[str, object]:
    import logging

    from app.logs import ContextFilter

    record = logging.LogRecord("t", logging.INFO, __file__, 1, "m", None, None)
    ContextFilter().filter(record)
    return record.ids  # type: ignore[attr-defined]
