"""A learning path's tree (concepts → sub-concepts → knowledge units) as Markdown or as the JSON
document `learningPath` (schema in docs/EXPORT.md). One ordered query read in batches of rows,
grouped as it streams, so a path of 10,000 units never sits in memory whole."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
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
from app.models import Concept, KnowledgeUnit, LearningPath, SubConcept

KIND = "learning-path"
RowGroups = Iterator[tuple[Row[Any], Iterator[Row[Any]]]]


@dataclass
class _Totals:
    concepts: int = 0
    sub_concepts: int = 0
    knowledge_units: int = 0

    def as_json(self) -> dict[str, int]:
        return {
            "concepts": self.concepts,
            "subConcepts": self.sub_concepts,
            "knowledgeUnits": self.knowledge_units,
        }


def learning_path_export(path: LearningPath, export_format: ExportFormat) -> Export:
    """The path's tree as a download; nothing is read until the body is iterated."""
    render = _markdown if export_format is ExportFormat.MARKDOWN else _json
    return attachment(path.name, KIND, export_format, render(_header(path), path.id))


def _header(path: LearningPath) -> dict[str, Any]:
    return {
        "id": path.id,
        "name": path.name,
        "topic": path.topic,
        "description": path.description,
        "conceptCount": path.concept_count,
        "createdAt": isoformat(path.created_at),
    }


def _rows(path_id: str) -> Iterator[Row[*tuple[Any, ...]]]:
    """One row per unit (or per childless sub-concept or concept), in reading order."""
    query = (
        select(
            Concept.id.label("concept_id"),
            Concept.name.label("concept_name"),
            Concept.description.label("concept_description"),
            SubConcept.id.label("sub_id"),
            SubConcept.name.label("sub_name"),
            SubConcept.description.label("sub_description"),
            KnowledgeUnit.title,
            KnowledgeUnit.kind,
            KnowledgeUnit.content,
        )
        .select_from(Concept)
        .outerjoin(SubConcept, SubConcept.concept_id == Concept.id)
        .outerjoin(KnowledgeUnit, KnowledgeUnit.sub_concept_id == SubConcept.id)
        .where(Concept.path_id == path_id)
        .order_by(Concept.position, SubConcept.position, KnowledgeUnit.position)
        .execution_options(yield_per=BATCH_ROWS)
    )
    with db.session.execute(query) as rows:
        yield from rows


def _groups(rows: Iterator[Row[Any]], key: str, child_key: str) -> RowGroups:
    """Consecutive rows sharing `key`: the first row for the parent's fields, and the rows that
    carry a child (an outer join gives a childless parent one row with `child_key` NULL)."""
    for _, group in groupby(rows, key=attrgetter(key)):
        first = next(group)
        yield first, (row for row in chain([first], group) if getattr(row, child_key) is not None)


def _tree(path_id: str) -> Iterator[tuple[Row[Any], RowGroups]]:
    for concept, rows in _groups(_rows(path_id), "concept_id", "sub_id"):
        yield concept, _groups(rows, "sub_id", "title")


def _json(header: dict[str, Any], path_id: str) -> Iterator[str]:
    totals = _Totals()
    yield open_object(
        {
            "schemaVersion": SCHEMA_VERSION,
            "kind": "learningPath",
            "exportedAt": isoformat(utcnow()),
            "path": header,
        },
        "concepts",
    )
    for index, (concept, sub_concepts) in enumerate(_tree(path_id)):
        totals.concepts += 1
        fields = {
            "number": index + 1,
            "name": concept.concept_name,
            "description": concept.concept_description,
        }
        yield separator(index) + open_object(fields, "subConcepts")
        for sub_index, (sub, units) in enumerate(sub_concepts):
            yield from _sub_concept_json(sub_index, sub, units, totals)
        yield "]}"
    yield "\n" + close_object({"totals": totals.as_json()}) + "\n"


def _sub_concept_json(index: int, sub: Row[Any], units: Iterator[Row[Any]], totals: _Totals) -> Iterator[str]:
    totals.sub_concepts += 1
    fields = {"number": index + 1, "name": sub.sub_name, "description": sub.sub_description}
    yield separator(index) + open_object(fields, "knowledgeUnits")
    for unit_index, unit in enumerate(units):
        totals.knowledge_units += 1
        fields = {"number": unit_index + 1, "title": unit.title, "kind": unit.kind, "content": unit.content}
        yield separator(unit_index) + dump(fields)
    yield "]}"


def _markdown(header: dict[str, Any], path_id: str) -> Iterator[str]:
    yield f"# {one_line(header['name'])}\n\nLearning path · {one_line(header['topic'])}\n\n"
    if header["description"]:
        yield f"{header['description'].strip()}\n\n"
    yield f"Exported {readable_time(utcnow())}\n"
    for c, (concept, sub_concepts) in enumerate(_tree(path_id), start=1):
        yield f"\n## {c}. {one_line(concept.concept_name)}\n\n{_paragraph(concept.concept_description)}"
        for s, (sub, units) in enumerate(sub_concepts, start=1):
            yield f"\n### {c}.{s} {one_line(sub.sub_name)}\n\n{_paragraph(sub.sub_description)}"
            for u, unit in enumerate(units, start=1):
                yield f"\n#### {c}.{s}.{u} {one_line(unit.title)}\n\n_{one_line(unit.kind)}_\n\n"
                yield _paragraph(unit.content)


def _paragraph(text: str | None) -> str:
    return f"{text.strip()}\n" if text and text.strip() else ""
