"""The API's loaders: a row the token's user may see, else 404 (shared by the route modules,
which do not import each other)."""

from __future__ import annotations

from flask import g

from app.access import owned_build, owned_path, owned_workflow
from app.models import Build, LearningPath, Workflow


def load_path(path_id: str, with_tree: bool = False) -> LearningPath:
    return owned_path(path_id, g.user, with_tree)


def load_build(build_id: str) -> Build:
    return owned_build(build_id, g.user)


def load_workflow(workflow_id: str, with_lessons: bool = False) -> Workflow:
    return owned_workflow(workflow_id, g.user, with_lessons)
