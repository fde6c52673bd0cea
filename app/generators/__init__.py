"""The seam between pipelines and content: a generator turns a brief into drafts."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from app.generators.schemas import LessonPlanDraft, ModuleBrief

ProgressCallback = Callable[[int], None]


class Generator(Protocol):
    def lesson_plans(self, brief: ModuleBrief, progress: ProgressCallback) -> list[LessonPlanDraft]:
        """Return the module's lesson plans, calling progress(0..100) as work advances."""
        ...


def build_generator(config: Mapping[str, Any]) -> Generator:
    """The generator the settings name; the offline one needs no key and no network."""
    name = config["GENERATOR"]
    if name == "offline":
        from app.generators.offline import OfflineGenerator

        return OfflineGenerator(
            latency_ms=config["GENERATOR_LATENCY_MS"],
            failure_rate=config["GENERATOR_FAILURE_RATE"],
            fail_on=config["GENERATOR_FAIL_ON"],
        )
    raise ValueError(f"GENERATOR={name!r} is not a known generator (known: offline)")
