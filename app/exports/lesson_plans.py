"""A workflow's lesson plans, module by module, as Markdown or as the JSON document `lessonPlans`
(schema in docs/EXPORT.md); rows are read in batches, never all at once."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import chain, groupby
from operator import attrgetter
from typing import Any

from sqlalchemy import Row, select

from app.database import isoformat, utcnow
from app.exports.formats import (
    BATCH_ROWS,
    SCHEMA_VERSION,
    Export,
    ExportFormat,
    attachment,
    close_object,
    dump,
    one_line,
    open_object,
    readable_time,
    separator,
)
from app.extensions import db
from app.models import LessonPlan, Module, Workflow

KIND = "lesson-plans"


def lesson_plans_export(workflow: Workflow, export_format: ExportFormat) -> Export:
    """The workflow's lesson plans as a download; nothing is read until the body is iterated."""
    render = _markdown if export_format is ExportFormat.MARKDOWN else _json
    return attachment(workflow.title, KIND, export_format, render(_header(workflow), workflow.id))


def _header(workflow: Workflow) -> dict[str, Any]:
    return {
        "id": workflow.id,
        "title": workflow.title,
        "topic": workflow.topic,
        "audience": workflow.audience,
        "createdAt": isoformat(workflow.created_at),
    }


def _modules(workflow_id: str) -> Iterator[tuple[Row[Any], Iterator[Row[Any]]]]:
    """Each module's row, with its lesson plans' rows in order (none for a module not generated)."""
    query = (
        select(
            Module.position,
            Module.title,
            Module.contact_hours,
            Module.status,
            LessonPlan.title.label("lesson_title"),
            LessonPlan.objectives,
            LessonPlan.activities,
            LessonPlan.assessment,
            LessonPlan.duration_minutes,
        )
        .select_from(Module)
        .outerjoin(LessonPlan, LessonPlan.module_id == Module.id)
        .where(Module.workflow_id == workflow_id)
        .order_by(Module.position, LessonPlan.order)
        .execution_options(yield_per=BATCH_ROWS)
    )
    with db.session.execute(query) as rows:
        for _, module_rows in groupby(rows, key=attrgetter("position")):
            first = next(module_rows)
            yield first, (row for row in chain([first], module_rows) if row.lesson_title is not None)


def _activity(activity: dict[str, Any]) -> dict[str, Any]:
    # Stored as the generator wrote it (snake_case); either spelling is read.
    minutes = activity.get("durationMinutes", activity.get("duration_minutes"))
    return {"name": activity.get("name"), "kind": activity.get("kind"), "durationMinutes": minutes}


def _json(header: dict[str, Any], workflow_id: str) -> Iterator[str]:
    modules = lessons = minutes = 0
    yield open_object(
        {
            "schemaVersion": SCHEMA_VERSION,
            "kind": "lessonPlans",
            "exportedAt": isoformat(utcnow()),
            "workflow": header,
        },
        "modules",
    )
    for module, rows in _modules(workflow_id):
        fields = {
            "number": module.position + 1,  # as every page counts modules
            "title": module.title,
            "contactHours": module.contact_hours,
            "status": module.status,
        }
        yield separator(modules) + open_object(fields, "lessonPlans")
        modules += 1
        for index, row in enumerate(rows):
            lessons += 1
            minutes += row.duration_minutes
            yield separator(index) + dump(_lesson(index + 1, row))
        yield "]}"
    totals = {"modules": modules, "lessonPlans": lessons, "contactHours": round(minutes / 60, 2)}
    yield "\n" + close_object({"totals": totals}) + "\n"


def _lesson(number: int, row: Row[Any]) -> dict[str, Any]:
    return {
        "number": number,
        "title": row.lesson_title,
        "durationMinutes": row.duration_minutes,
        "objectives": row.objectives,
        "activities": [_activity(activity) for activity in row.activities],
        "assessment": row.assessment,
    }


def _markdown(header: dict[str, Any], workflow_id: str) -> Iterator[str]:
    yield f"# {one_line(header['title'])}\n\n"
    audience = f" · for {one_line(header['audience'])}" if header["audience"] else ""
    yield f"Lesson plans · {one_line(header['topic'])}{audience}\n\nExported {readable_time(utcnow())}\n"
    for module, rows in _modules(workflow_id):
        yield f"\n## Module {module.position + 1}: {one_line(module.title)}\n\n"
        yield f"{_contact_hours(module.contact_hours)}\n"
        empty = True
        for lesson_number, row in enumerate(rows, start=1):
            empty = False
            yield _lesson_markdown(lesson_number, row)
        if empty:
            yield "\n_No lesson plans generated yet._\n"


def _contact_hours(hours: float) -> str:
    """'1 contact hour', '2.5 contact hours': the pages' plural, for the people reading the file."""
    return f"{hours:g} contact hour" + ("" if hours == 1 else "s")


def _lesson_markdown(number: int, row: Row[Any]) -> str:
    objectives = "".join(f"- {one_line(objective)}\n" for objective in row.objectives)
    activities = "".join(
        f"{i}. {one_line(a['name'])} ({one_line(a['kind'])}) — {a['durationMinutes']} min\n"
        for i, a in enumerate((_activity(activity) for activity in row.activities), start=1)
    )
    return (
        f"\n### Lesson {number}: {one_line(row.lesson_title)} ({row.duration_minutes} min)\n\n"
        f"**Objectives**\n\n{objectives}\n**Activities**\n\n{activities}\n"
        f"**Assessment**\n\n{row.assessment.strip()}\n"
    )
