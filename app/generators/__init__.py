"""The seam between pipelines and content: a generator turns a brief into drafts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from app.generators.schemas import (
    ConceptBrief,
    ConceptDraft,
    KnowledgeUnitDraft,
    LessonPlanDraft,
    ModuleBrief,
    PathBrief,
    SubConceptBrief,
    SubConceptDraft,
)

ProgressCallback = Callable[[int], None]


class Generator(Protocol):
    def lesson_plans(self, brief: ModuleBrief, progress: ProgressCallback) -> list[LessonPlanDraft]:
        """Return the module's lesson plans, calling progress(0..100) as work advances."""
        ...

    def concepts(self, brief: PathBrief, progress: ProgressCallback) -> list[ConceptDraft]:
        """Return the path's concepts, in teaching order."""
        ...

    def sub_concepts(self, brief: ConceptBrief, progress: ProgressCallback) -> list[SubConceptDraft]:
        """Return the concept broken into sub-concepts."""
        ...

    def knowledge_units(self, brief: SubConceptBrief, progress: ProgressCallback) -> list[KnowledgeUnitDraft]:
        """Return the sub-concept's knowledge units."""
        ...
