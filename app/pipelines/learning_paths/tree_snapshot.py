"""The tree a whole-path regenerate replaces, kept on its build while it runs: the page shows
it, marked as being updated, instead of the half-made new one (the orchestrator deletes the old
concepts as soon as the new ones arrive)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from app.extensions import db
from app.models import Concept, KnowledgeUnit, LearningPath, SubConcept


def snapshot_tree(path: LearningPath) -> list[dict[str, Any]] | None:
    """The path's concepts, their sub-concepts and their units' kinds and titles, in order, in
    three queries; None when there is no tree to keep."""
    concepts = db.session.execute(
        select(Concept.id, Concept.name).where(Concept.path_id == path.id).order_by(Concept.position)
    ).all()
    if not concepts:
        return None
    subs = db.session.execute(
        select(SubConcept.id, SubConcept.concept_id, SubConcept.name)
        .join(Concept)
        .where(Concept.path_id == path.id)
        .order_by(SubConcept.position)
    ).all()
    units = db.session.execute(
        select(KnowledgeUnit.sub_concept_id, KnowledgeUnit.kind, KnowledgeUnit.title)
        .join(SubConcept)
        .join(Concept)
        .where(Concept.path_id == path.id)
        .order_by(KnowledgeUnit.position)
    ).all()
    units_of: dict[int, list[dict[str, str]]] = {}
    for sub_id, kind, title in units:
        units_of.setdefault(sub_id, []).append({"kind": kind, "title": title})
    subs_of: dict[int, list[dict[str, Any]]] = {}
    for sub_id, concept_id, name in subs:
        subs_of.setdefault(concept_id, []).append({"name": name, "units": units_of.get(sub_id, [])})
    return [{"name": name, "subConcepts": subs_of.get(concept_id, [])} for concept_id, name in concepts]
