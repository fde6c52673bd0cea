"""Learning paths and their generated tree."""

from __future__ import annotations

from typing import Any

from flask import g, jsonify
from flask.typing import ResponseReturnValue
from sqlalchemy import select

from app.access import owner_filter
from app.api import bp
from app.api.loaders import load_path
from app.api.schemas import LearningPathIn, parse_body, query_choice, query_page
from app.database import isoformat
from app.extensions import db
from app.models import Build, LearningPath
from app.pipelines.learning_paths.status import build_summary, progress_percent, unit_fractions
from app.pipelines.listings import PATH_STATUSES, PathRow, path_page
from app.seed_names import build_json


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
def create_learning_path() -> ResponseReturnValue:
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


def _path_item(row: PathRow, fractions: dict[str, float]) -> dict[str, Any]:
    build = row.latest_build
    latest = None
    if build is not None:
        latest = {
            "id": build.id,
            "status": build.status,
            "progressPercent": progress_percent(build, fractions.get(build.id, 0.0)),
            "createdAt": isoformat(build.created_at),
            "completedAt": isoformat(build.completed_at),
        }
    return row.path.to_dict() | {"status": row.status, "latestBuild": latest}


@bp.get("/learning-paths")
def list_learning_paths() -> ResponseReturnValue:
    """List the caller's paths (an admin: everyone's), newest first, each with its latest build."""
    status = query_choice("status", list(PATH_STATUSES))
    page, limit = query_page()
    found = path_page(owner_filter(g.user), status, page, limit)
    fractions = unit_fractions([row.latest_build.id for row in found.rows if row.latest_build])
    return jsonify(
        {"data": [_path_item(row, fractions) for row in found.rows], "pagination": found.pagination()}
    )


@bp.get("/learning-paths/<path_id>")
def get_learning_path(path_id: str) -> ResponseReturnValue:
    """Show the path, its whole generated tree and its latest build."""
    path = load_path(path_id, with_tree=True)
    latest = db.session.scalar(
        select(Build).where(Build.path_id == path.id).order_by(Build.created_at.desc()).limit(1)
    )
    return path.to_dict() | {
        "concepts": tree(path),
        "latestBuild": build_json(build_summary(latest)) if latest else None,
    }
