"""One mapping from a refused change to the words and status the pages show (the API's is
app/api/control_errors.py): the same refusal reads the same on every page."""

from __future__ import annotations

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from app.pipelines.learning_paths import control as build_control
from app.pipelines.lesson_plans import run as lesson_plan_run
from app.web.refusals import QUEUE_DOWN_FOR_BUILD, QUEUE_DOWN_FOR_RUN, page_refusal


def test_a_build_conflict_reads_as_a_running_build_without_its_id() -> None:
    conflict = build_control.BuildConflict("b1")
    assert page_refusal(conflict) == ("A build of this path is already running.", 409)
    assert page_refusal(conflict, regenerate=True) == (
        "A build of this path is already running; regenerate once it has ended.",
        409,
    )


def test_refusals_keep_their_own_words_and_status() -> None:
    assert page_refusal(build_control.InvalidTransition("Cannot pause a paused build.")) == (
        "Cannot pause a paused build.",
        400,
    )
    assert page_refusal(build_control.QuotaExceeded("Too many builds.")) == ("Too many builds.", 429)
    running = lesson_plan_run.GenerationInProgress("Lesson plans are being generated.")
    assert page_refusal(running, regenerate=True) == (
        "Lesson plans are being generated. Regenerate once it has ended.",
        409,
    )


def test_a_queue_outage_says_what_happens_to_the_request() -> None:
    down = RedisConnectionError("refused")
    assert page_refusal(down) == (QUEUE_DOWN_FOR_BUILD, 503)
    assert page_refusal(down, queue_down=QUEUE_DOWN_FOR_RUN) == (QUEUE_DOWN_FOR_RUN, 503)


def test_anything_else_is_not_a_refusal() -> None:
    with pytest.raises(KeyError):
        page_refusal(KeyError("not ours"))
