"""The seam between pipelines and content: a generator turns a brief into drafts."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

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


def build_generator(config: Mapping[str, Any], fresh: bool = False) -> Generator:
    """The generator the settings name; the offline one needs no key and no network.

    `fresh` asks the model again instead of reusing stored answers.
    """
    name = config["GENERATOR"]
    if name == "openai":
        from app.generators.openai import OpenAIGenerator

        return OpenAIGenerator(config, fresh=fresh)
    if name == "offline":
        from app.generators.offline import OfflineGenerator

        return OfflineGenerator(
            latency_ms=config["GENERATOR_LATENCY_MS"],
            failure_rate=config["GENERATOR_FAILURE_RATE"],
            fail_on=config["GENERATOR_FAIL_ON"],
        )
    raise ValueError(f"GENERATOR={name!r} is not a known generator (known: offline, openai)")
