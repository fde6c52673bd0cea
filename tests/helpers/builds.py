"""Builds set up for a test: a sub-concept the offline generator will fail on, and a path whose
build rows are written directly (as big as a test needs, without running it)."""

from __future__ import annotations

from sqlalchemy import insert, select

from app.database import utcnow
from app.extensions import db
from app.generators.offline import OfflineGenerator
from app.generators.schemas import ConceptBrief, PathBrief
from app.models import Build, BuildEvent, BuildStep, GeneratorCall, LearningPath, User


def failing_sub_concept() -> str:
    """A sub-concept name the offline generator will produce for concept 1 of the test path."""
    generator = OfflineGenerator()
    concepts = generator.concepts(
        PathBrief(name="Statistics for Nurses", topic="statistics", concept_count=3), lambda _: None
    )
    brief = ConceptBrief(
        path_name="Statistics for Nurses",
        topic="statistics",
        concept_name=concepts[1].name,
        concept_description="",
        position=1,
        total_concepts=3,
    )
    return generator.sub_concepts(brief, lambda _: None)[0].name


def path_with_build(app, steps: int, status: str = "processing") -> str:  # type: ignore[no-untyped-def]
    """A path whose build has `steps` knowledge-unit steps (half done) and as many events."""
    with app.app_context():
        owner = db.session.scalar(select(User.id))
        path = LearningPath(owner_id=owner, name=f"Path of {steps}", topic="stats")
        db.session.add(path)
        db.session.flush()
        build = Build(
            path_id=path.id,
            status=status,
            triggered_by=owner,
            total_concepts=10,
            completed_concepts=10,
            total_sub_concepts=steps,
            completed_sub_concepts=steps // 2,
            started_at=utcnow(),
        )
        db.session.add(build)
        db.session.flush()
        db.session.execute(
            insert(BuildStep),
            [
                {
                    "build_id": build.id,
                    "type": "sub-concepts",
                    "entity_id": i,
                    "status": "completed",
                    "children_total": steps // 10,
                    "children_done": steps // 20,
                    "created_at": utcnow(),
                }
                for i in range(10)
            ]
            + [
                {
                    "build_id": build.id,
                    "type": "knowledge-units",
                    "entity_id": 100 + i,
                    "status": "completed" if i % 2 else "queued",
                    "created_at": utcnow(),
                }
                for i in range(steps)
            ],
        )
        db.session.execute(
            insert(BuildEvent),
            [
                {
                    "build_id": build.id,
                    "type": "progress",
                    "data": {"stage": "knowledge-units", "item": f"u{i}", "status": "completed"},
                    "created_at": utcnow(),
                }
                for i in range(steps)
            ],
        )
        # A call record per finished step, as a real build has (its usage must not cost a scan).
        db.session.execute(
            insert(GeneratorCall),
            [
                {
                    "build_id": build.id,
                    "kind": "knowledge-units",
                    "called_at": utcnow(),
                    "model": "offline",
                    "prompt_tokens": 10,
                    "completion_tokens": 20,
                }
                for _ in range(steps // 2)
            ],
        )
        db.session.commit()
        return path.id
