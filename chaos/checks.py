"""What must hold after any scenario: exact counts, no duplicates, no step lost, one ending."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import func, select

from app.extensions import db
from app.models import Build, BuildEvent, BuildStep, Concept, GeneratorCall, KnowledgeUnit, SubConcept
from app.models.statuses import FINAL


def check_build(app: Flask, build_id: str, expected: str = "completed") -> list[str]:
    """Problems found (an empty list when all holds)."""
    problems = []
    with app.app_context():
        build = db.session.get(Build, build_id)
        if build.status != expected:
            problems.append(f"build is {build.status}, expected {expected} ({build.error})")
        concepts = db.session.scalars(select(Concept.id).where(Concept.path_id == build.path_id)).all()
        subs = db.session.scalars(select(SubConcept.id).where(SubConcept.concept_id.in_(concepts))).all()
        units = db.session.scalar(
            select(func.count(KnowledgeUnit.id)).where(KnowledgeUnit.sub_concept_id.in_(subs))
        )
        distinct_units = db.session.scalar(
            select(func.count()).select_from(
                select(KnowledgeUnit.sub_concept_id, KnowledgeUnit.title)
                .where(KnowledgeUnit.sub_concept_id.in_(subs))
                .distinct()
                .subquery()
            )
        )
        counts = {
            "concepts": (build.total_concepts, len(concepts)),
            "sub-concepts": (build.total_sub_concepts, len(subs)),
            "knowledge units": (build.total_knowledge_units, units),
        }
        problems += [
            f"{name}: counter {counter} but {rows} rows"
            for name, (counter, rows) in counts.items()
            if counter != rows
        ]
        if units != distinct_units:
            problems.append(f"{units - distinct_units} duplicate knowledge units")
        steps = db.session.scalars(select(BuildStep).where(BuildStep.build_id == build_id)).all()
        if unfinished := [s.id for s in steps if s.status not in FINAL]:
            problems.append(f"steps never finished: {unfinished[:5]}")
        if expected == "completed":
            if len([s for s in steps if s.type == "sub-concepts"]) != len(concepts):
                problems.append("a concept has no decompose step")
            if len([s for s in steps if s.type == "knowledge-units"]) != len(subs):
                problems.append("a sub-concept has no knowledge-unit step")
        endings = db.session.scalar(
            select(func.count(BuildEvent.id)).where(
                BuildEvent.build_id == build_id, BuildEvent.type == "completed"
            )
        )
        if endings != 1:
            problems.append(f"{endings} final events, expected exactly 1")
        tokens_recorded = func.coalesce(func.sum(GeneratorCall.completion_tokens), 0)
        recorded = select(func.count(GeneratorCall.id), tokens_recorded)
        calls, tokens = db.session.execute(recorded.where(GeneratorCall.build_id == build_id)).one()
        if (build.usage_calls, build.usage_completion_tokens) != (calls, tokens):
            problems.append(
                f"usage counters say {build.usage_calls} calls / {build.usage_completion_tokens} tokens, "
                f"the call records {calls} / {tokens}"
            )
    return problems
