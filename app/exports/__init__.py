"""Exports: a workflow's lesson plans and a path's tree as Markdown (for people) or JSON (for
machines), written as a stream of text chunks read from the database in batches, so an export
of any size holds only one batch in memory. Free of Flask requests: views hand the chunks on."""

from __future__ import annotations

from app.exports.formats import SCHEMA_VERSION, Export, ExportFormat
from app.exports.learning_paths import learning_path_export
from app.exports.lesson_plans import lesson_plans_export

__all__ = [
    "SCHEMA_VERSION",
    "Export",
    "ExportFormat",
    "learning_path_export",
    "lesson_plans_export",
]
