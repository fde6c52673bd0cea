"""The words the pages show: one vocabulary for statuses, real plurals, readable durations,
times with their zone and activity-log sentences. Registered as Jinja filters by the factory,
so every template says the same thing the same way."""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

from flask import Flask
from markupsafe import Markup

from app.models.statuses import STATUS_ENUMS, BuildStatus, RunStatus, WorkflowStatus, WorkStatus


class StatusWords(NamedTuple):
    label: str
    badge: str  # the CSS class suffix: badge-<badge>
    hint: str


_NOT_STARTED = StatusWords("not started", "pending", "Not started yet: it waits for its turn.")
_PROCESSING = StatusWords("processing", "processing", "Being generated now.")
_COMPLETED = StatusWords("completed", "completed", "Done.")

# Every status the database or the API knows, said one way. A lesson-plan run's "running" and
# "complete" and the workflow's "in_progress" are a build's "processing" and "completed".
STATUS_WORDS: dict[str, StatusWords] = {
    WorkStatus.PENDING: _NOT_STARTED,
    "not started": _NOT_STARTED,
    "not built": StatusWords("not built", "pending", "No build has been started yet."),
    WorkStatus.QUEUED: StatusWords("queued", "queued", "Waiting for a free worker."),
    WorkStatus.RUNNING: _PROCESSING,
    BuildStatus.PROCESSING: _PROCESSING,
    WorkflowStatus.IN_PROGRESS: _PROCESSING,
    WorkStatus.RETRYING: StatusWords("retrying", "retrying", "An attempt failed; the next one is scheduled."),
    BuildStatus.PAUSED: StatusWords("paused", "paused", "Paused: resume it to go on."),
    WorkStatus.COMPLETED: _COMPLETED,
    RunStatus.COMPLETE: _COMPLETED,
    WorkStatus.FAILED: StatusWords("failed", "failed", "Every attempt failed; retry to run what is missing."),
    WorkStatus.CANCELLED: StatusWords("cancelled", "cancelled", "Cancelled: retry to run what is missing."),
    WorkStatus.SKIPPED: StatusWords(
        "already done", "skipped", "Done by an earlier build and kept as it was."
    ),
}


def status_words(status: str | None) -> StatusWords:
    """The label, badge class and hint of a status; an unknown one is shown as its own words."""
    key = str(status or "pending")
    return STATUS_WORDS.get(key) or StatusWords(key.replace("_", " "), "other", "")


def status_label(status: str | None) -> str:
    return status_words(status).label


def plural(count: int | float, singular: str, plural_form: str | None = None) -> str:
    """'1 lesson', '3 lessons', '0 lessons'; `plural_form` for irregular words."""
    word = singular if count == 1 else (plural_form or f"{singular}s")
    return f"{count:,} {word}" if isinstance(count, int) else f"{count:g} {word}"


def duration(seconds: float | None) -> str:
    """'0.4 s', '1.2 s', '45 s', '3 min', '1.5 h': precise when short, rounded when long."""
    if seconds is None:
        return "–"
    if seconds < 10:
        return f"{seconds:.1f}".removesuffix(".0") + " s"
    if seconds < 90:
        return f"{round(seconds)} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def duration_ms(milliseconds: int | None) -> str:
    return duration(None if milliseconds is None else milliseconds / 1000)


def ago(seconds: float | None) -> str:
    """'just now', '40 s ago', '2 min ago'."""
    if seconds is None:
        return "never"
    return "just now" if seconds < 5 else f"{duration(seconds)} ago"


def when(moment: datetime | None, time_only: bool = False) -> Markup:
    """A stored (naive UTC) time as <time> with its zone: '2026-11-25 14:03 UTC'."""
    if moment is None:
        return Markup("–")
    shown = moment.strftime("%H:%M:%S" if time_only else "%Y-%m-%d %H:%M")
    stamp = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    return Markup('<time datetime="{}">{} UTC</time>').format(stamp, shown)


def _quoted(item: Any) -> str:
    return f"“{item}”" if item else ""


# What each stage does, as a sentence: (stage, status) → words; {item} and {count} filled in.
_PROGRESS = {
    ("concepts", "queued"): "Build queued",
    ("concepts", "started"): "Build started: generating the concepts",
    ("concepts", "completed"): "Generated {concepts}",
    ("sub-concepts", "completed"): "Broke {item} into {sub_concepts}",
    ("knowledge-units", "completed"): "Wrote {units} for {item}",
}
_STAGE_NOUN = {
    "concepts": "the concepts",
    "sub-concepts": "the sub-concepts of",
    "knowledge-units": "the knowledge units of",
}


def event_text(event_type: str, data: dict[str, Any]) -> str:
    """One activity-log line in plain words (never the internal stage and status names)."""
    stage, status, item = data.get("stage"), data.get("status"), _quoted(data.get("item"))
    what = f"{_STAGE_NOUN.get(str(stage), 'the build')} {item}".strip()
    if event_type == "error":
        retry = " (will retry)" if data.get("willRetry") else " (gave up)"
        return f"Error generating {what}{retry}: {data.get('error')}"
    if event_type == "completed":  # a failed build's error is shown once, beside its badge
        return f"Build {status_label(status)}"
    count = int(data.get("count") or 0)
    template = _PROGRESS.get((str(stage), str(status)))
    if template:
        return template.format(
            item=item,
            concepts=plural(count, "concept"),
            sub_concepts=plural(count, "sub-concept"),
            units=plural(count, "knowledge unit"),
        )
    if status == WorkStatus.RETRYING:
        return f"Retrying {what}"
    return f"Build {status}"


def _badge(status: str | None) -> Markup:
    words = status_words(status)
    return Markup('<span class="badge badge-{}" title="{}">{}</span>').format(
        words.badge, words.hint, words.label
    )


def register_filters(app: Flask) -> None:
    app.jinja_env.filters.update(
        status_label=status_label,
        badge=_badge,
        plural=plural,
        duration=duration,
        duration_ms=duration_ms,
        ago=ago,
        when=when,
    )
    # Templates compare statuses to these enums (`build.status == BuildStatus.PAUSED`), never raw strings.
    app.jinja_env.globals.update(event_text=event_text, **STATUS_ENUMS)
