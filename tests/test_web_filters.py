"""The words the pages use: one label per status, real plurals, readable durations, times with
their zone and activity-log sentences in plain words."""

from __future__ import annotations

from datetime import datetime

import pytest

from app.models import BuildStatus, RunStatus, WorkStatus
from app.web.filters import ago, duration, duration_ms, event_text, plural, status_label, status_words, when


def test_every_status_the_app_knows_has_a_label_without_underscores():
    statuses = {*BuildStatus, *RunStatus, *WorkStatus, "in_progress", "not started", "not built"}
    for status in statuses:
        words = status_words(status)
        assert words.badge != "other", status
        assert "_" not in words.label and words.hint, status


@pytest.mark.parametrize(
    ("synonyms", "label"),
    [
        (("complete", "completed"), "completed"),
        (("running", "processing", "in_progress"), "processing"),
        (("pending", "not started"), "not started"),
    ],
)
def test_one_state_is_said_one_way_wherever_it_comes_from(synonyms, label):
    assert {status_label(s) for s in synonyms} == {label}
    assert len({status_words(s).badge for s in synonyms}) == 1


def test_an_unknown_status_is_shown_as_words_not_as_an_identifier():
    assert status_label("rate_limited") == "rate limited"


@pytest.mark.parametrize(
    ("count", "word", "expected"),
    [
        (1, "lesson", "1 lesson"),
        (0, "lesson", "0 lessons"),
        (3, "attempt", "3 attempts"),
        (1, "sub-concept", "1 sub-concept"),
        (12_500, "knowledge unit", "12,500 knowledge units"),
        (1.0, "contact hour", "1 contact hour"),
        (2.5, "contact hour", "2.5 contact hours"),
    ],
)
def test_plural_says_one_thing_and_many_things(count, word, expected):
    assert plural(count, word) == expected


def test_plural_takes_an_irregular_form():
    assert plural(2, "child", "children") == "2 children"


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (None, "–"),
        (0.4, "0.4 s"),
        (1.23, "1.2 s"),
        (5, "5 s"),
        (59.743, "60 s"),
        (146, "2 min"),
        (180, "3 min"),
        (2 * 3600, "2.0 h"),
    ],
)
def test_durations_read_like_a_person_says_them(seconds, expected):
    assert duration(seconds) == expected


def test_milliseconds_are_shown_as_seconds_or_minutes():
    assert duration_ms(59_743) == "60 s" and duration_ms(1_200) == "1.2 s" and duration_ms(None) == "–"


def test_a_heartbeat_says_how_long_ago():
    assert ago(2) == "just now" and ago(146) == "2 min ago" and ago(None) == "never"


def test_a_time_carries_its_zone_and_a_machine_readable_stamp():
    moment = datetime(2026, 11, 25, 14, 3, 9)
    assert str(when(moment)) == '<time datetime="2026-11-25T14:03:09Z">2026-11-25 14:03 UTC</time>'
    assert str(when(moment, time_only=True)).endswith(">14:03:09 UTC</time>")
    assert str(when(None)) == "–"


@pytest.mark.parametrize(
    ("event_type", "data", "expected"),
    [
        ("progress", {"stage": "concepts", "status": "queued"}, "Build queued"),
        ("progress", {"stage": "concepts", "status": "completed", "count": 3}, "Generated 3 concepts"),
        (
            "progress",
            {"stage": "sub-concepts", "item": "Means", "status": "completed", "count": 1},
            "Broke “Means” into 1 sub-concept",
        ),
        (
            "progress",
            {"stage": "knowledge-units", "item": "Median", "status": "completed", "count": 4},
            "Wrote 4 knowledge units for “Median”",
        ),
        ("progress", {"stage": "knowledge-units", "status": "paused"}, "Build paused"),
        (
            "progress",
            {"stage": "sub-concepts", "item": "Means", "status": "retrying"},
            "Retrying the sub-concepts of “Means”",
        ),
        (
            "error",
            {"stage": "knowledge-units", "item": "Median", "error": "timeout", "willRetry": True},
            "Error generating the knowledge units of “Median” (will retry): timeout",
        ),
        ("completed", {"status": "completed", "error": None}, "Build completed"),
        ("completed", {"status": "failed", "error": "1 step failed"}, "Build failed"),
    ],
)
def test_activity_log_lines_are_sentences_without_internal_names(event_type, data, expected):
    assert event_text(event_type, data) == expected
