"""How much of a path's tree is stored: a start that would find nothing to do can say so."""

from __future__ import annotations

from sqlalchemy import exists, select

from app.extensions import db
from app.models import Concept, LearningPath, SubConcept


def tree_is_complete(path: LearningPath) -> bool:
    """True when the concepts, every decomposition and every sub-concept's units are stored,
    so a build that reuses stored work would only skip steps (two queries at most)."""
    if path.concepts_generated_at is None:
        return False
    concepts = select(Concept.id).where(Concept.path_id == path.id)
    unfinished = select(
        exists().where(Concept.path_id == path.id, Concept.decomposed_at.is_(None))
        | exists().where(SubConcept.concept_id.in_(concepts), SubConcept.units_generated_at.is_(None))
    )
    return not db.session.scalar(unfinished)
