"""Loaders that return a row only to someone who may see it, else 404 (never 403: a
non-admin must not learn that another user's workflow, path or build exists)."""

from __future__ import annotations

from functools import cache
from typing import Any, Protocol

from sqlalchemy import ColumnElement, Select, bindparam, select
from sqlalchemy.orm import selectinload
from werkzeug.exceptions import NotFound

from app.extensions import db
from app.models import Build, Concept, LearningPath, Module, SubConcept, Workflow


class Viewer(Protocol):
    id: int
    is_admin: bool


def _may_see(viewer: Viewer, owner_id: int) -> bool:
    return viewer.is_admin or owner_id == viewer.id


def visible_to(viewer: Viewer, query: Select[Any], owner_id: ColumnElement[int] | Any) -> Select[Any]:
    """`query` limited to the rows the viewer may see: all for an admin, else those it owns."""
    return query if viewer.is_admin else query.where(owner_id == viewer.id)


def owner_filter(viewer: Viewer) -> int | None:
    """The owner id a listing keeps to: None (everyone's) for an admin."""
    return None if viewer.is_admin else viewer.id


def owned_workflow(workflow_id: str, viewer: Viewer, with_lessons: bool = False) -> Workflow:
    query = select(Workflow).where(Workflow.id == workflow_id)
    if with_lessons:
        query = query.options(selectinload(Workflow.modules).selectinload(Module.lesson_plans))
    workflow = db.session.scalar(query)
    if workflow is None or not _may_see(viewer, workflow.owner_id):
        raise NotFound(f"No workflow {workflow_id}.")
    return workflow


def owned_path(path_id: str, viewer: Viewer, with_tree: bool = False) -> LearningPath:
    path = db.session.scalar(_path_query(with_tree), {"path_id": path_id})
    if path is None or not _may_see(viewer, path.owner_id):
        raise NotFound(f"No learning path {path_id}.")
    return path


@cache
def _path_query(with_tree: bool) -> Select[LearningPath]:
    """Built once (a page's every poll asks for its path), with or without the whole tree."""
    query = select(LearningPath).where(LearningPath.id == bindparam("path_id"))
    if with_tree:
        query = query.options(
            selectinload(LearningPath.concepts)
            .selectinload(Concept.sub_concepts)
            .selectinload(SubConcept.knowledge_units)
        )
    return query


def owned_build(build_id: str, viewer: Viewer) -> Build:
    """The build with its path loaded in the same query."""
    build = db.session.scalar(select(Build).where(Build.id == build_id).options(selectinload(Build.path)))
    if build is None or not _may_see(viewer, build.path.owner_id):
        raise NotFound(f"No build job {build_id}.")
    return build
