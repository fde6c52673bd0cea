"""Learning paths and their generated tree."""

from __future__ import annotations

from typing import Any

from flask import g
from sqlalchemy import select

from app.access import owned_path
from app.api import bp
from app.api.schemas import LearningPathIn, parse_body
from app.extensions import db
from app.models import BuildJob, LearningPath
from app.pipelines.build_status import build_summary


def load_path(path_id: str, with_tree: bool = False) -> LearningPath:
    return owned_path(path_id, g.user, with_tree)


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
