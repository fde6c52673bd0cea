"""Learning paths and their generated tree."""

from __future__ import annotations

from typing import Any

from flask import g
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from app.api import bp
from app.api.schemas import LearningPathIn, parse_body
from app.errors import ApiError
from app.extensions import db
from app.models import BuildJob, Concept, LearningPath, SubConcept
from app.pipelines.build_status import build_summary


def load_path(path_id: str, with_tree: bool = False) -> LearningPath:
    """The path if the caller may see it; 404 otherwise."""
    query = select(LearningPath).where(LearningPath.id == path_id)
    if with_tree:
        query = query.options(
            selectinload(LearningPath.concepts)
            .selectinload(Concept.sub_concepts)
            .selectinload(SubConcept.knowledge_units)
        )
    path = db.session.scalar(query)
    if path is None or not (g.user.is_admin or path.owner_id == g.user.id):
        raise ApiError(404, "not_found", f"No learning path {path_id}.")
    return path


def tree(path: LearningPath) -> list[dict[str, Any]]:
    return [
        {
            "id": concept.id,
            "position": concept.position,
            "name": concept.name,
            "description": concept.description,
            "subConcepts": [
                {
                    "id": sub.id,
                    "position": sub.position,
                    "name": sub.name,
                    "description": sub.description,
                    "knowledgeUnits": [
                        {
                            "id": ku.id,
                            "position": ku.position,
                            "title": ku.title,
                            "kind": ku.kind,
                            "content": ku.content,
                        }
                        for ku in sub.knowledge_units
                    ],
                }
                for sub in concept.sub_concepts
            ],
        }
        for concept in path.concepts
    ]


@bp.post("/learning-paths")
def create_learning_path():  # type: ignore[no-untyped-def]
    """Create a learning path (its concepts come from a build)."""
    body = parse_body(LearningPathIn)
    path = LearningPath(
        owner_id=g.user.id,
        name=body.name,
        topic=body.topic,
        description=body.description or None,
        concept_count=body.concept_count,
    )
    db.session.add(path)
    db.session.commit()
    return path.to_dict(), 201


@bp.get("/learning-paths/<path_id>")
def get_learning_path(path_id: str):  # type: ignore[no-untyped-def]
    """Show the path, its whole generated tree and its latest build."""
    path = load_path(path_id, with_tree=True)
    latest = db.session.scalar(
        select(BuildJob).where(BuildJob.path_id == path.id).order_by(BuildJob.created_at.desc()).limit(1)
    )
    return path.to_dict() | {
        "concepts": tree(path),
        "latestBuild": build_summary(latest) if latest else None,
    }
