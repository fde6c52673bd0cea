"""A generator that needs no network: plausible, deterministic content from the input alone.

Knobs for demos and tests: a latency per call (so progress can be watched), a rate of
injected transient failures, and a title fragment that makes matching input fail on every
attempt (so retries run out).
"""

from __future__ import annotations

import hashlib
import math
import random
import time
from collections import Counter

from app.generators import ProgressCallback
from app.generators.errors import TransientGenerationError
from app.generators.schemas import (
    Activity,
    ConceptBrief,
    ConceptDraft,
    KnowledgeUnitDraft,
    LessonPlanDraft,
    ModuleBrief,
    PathBrief,
    SubConceptBrief,
    SubConceptDraft,
)

LESSON_MINUTES = 60
DEFAULT_CONCEPTS = 6
PROGRESS_SLICES = 10

_VERBS = ["Explain", "Apply", "Compare", "Analyse", "Design", "Evaluate", "Demonstrate", "Classify"]
_ANGLES = [
    "Foundations of",
    "Working with",
    "Case studies in",
    "Practical lab:",
    "Common pitfalls in",
    "Designing with",
    "Evaluating",
    "Extending",
]
_CONCEPT_ANGLES = [
    "Foundations of",
    "Core vocabulary of",
    "Tools for",
    "Methods in",
    "Patterns in",
    "Quality and ethics in",
    "Applying",
    "Advanced topics in",
]
_FACETS = ["Definition", "Motivation", "Mechanics", "Examples", "Pitfalls", "Practice", "Assessment"]
_UNIT_KINDS = ["explanation", "worked example", "exercise", "quiz", "summary"]
_ACTIVITY_KINDS = [
    ("Warm-up discussion", "discussion"),
    ("Guided walkthrough", "lecture"),
    ("Hands-on exercise", "practice"),
    ("Pair review", "peer-review"),
    ("Exit reflection", "reflection"),
]


# How many times this process has asked whether a subject fails: the n-th attempt at a subject
# draws from its own seed, so a failure pattern is reproducible and a retry still gets a fresh draw.
_attempts_by_subject: Counter[str] = Counter()


def _rng(*parts: object) -> random.Random:
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def split_minutes(total: int, parts: int) -> list[int]:
    """Split `total` into `parts` whole numbers that differ by at most one and sum to it."""
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


class OfflineGenerator:
    def __init__(self, latency_ms: int = 0, failure_rate: float = 0.0, fail_on: str = "") -> None:
        self.latency_ms = latency_ms
        self.failure_rate = failure_rate
        self.fail_on = fail_on

    def lesson_plans(self, brief: ModuleBrief, progress: ProgressCallback) -> list[LessonPlanDraft]:
        self._work(brief.module_title, progress)
        total_minutes = max(1, round(brief.contact_hours * 60))
        count = max(1, math.ceil(total_minutes / LESSON_MINUTES))
        rng = _rng(brief.topic, brief.audience, brief.module_title, brief.contact_hours)
        first_angle = rng.randrange(len(_ANGLES))  # one start per module: its titles differ
        return [
            self._lesson(brief, order, minutes, rng, first_angle)
            for order, minutes in enumerate(split_minutes(total_minutes, count))
        ]

    def concepts(self, brief: PathBrief, progress: ProgressCallback) -> list[ConceptDraft]:
        self._work(brief.name, progress)
        count = brief.concept_count or DEFAULT_CONCEPTS
        angles = _CONCEPT_ANGLES  # foundations first: a teaching order
        return [
            ConceptDraft(
                name=f"{angles[i % len(angles)]} {brief.topic}"
                + (f" ({i // len(angles) + 1})" if i >= len(angles) else ""),
                description=f"What {brief.name} needs on {angles[i % len(angles)].lower()} {brief.topic}.",
            )
            for i in range(count)
        ]

    def sub_concepts(self, brief: ConceptBrief, progress: ProgressCallback) -> list[SubConceptDraft]:
        self._work(brief.concept_name, progress)
        rng = _rng("sub-concepts", brief.topic, brief.concept_name)
        facets = rng.sample(_FACETS, rng.randint(3, 5))
        return [
            SubConceptDraft(
                name=f"{facet}: {brief.concept_name}",
                description=f"The {facet.lower()} of {brief.concept_name.lower()}.",
            )
            for facet in facets
        ]

    def knowledge_units(self, brief: SubConceptBrief, progress: ProgressCallback) -> list[KnowledgeUnitDraft]:
        self._work(brief.sub_concept_name, progress)
        rng = _rng("units", brief.topic, brief.sub_concept_name)
        kinds = rng.sample(_UNIT_KINDS, rng.randint(2, 4))
        return [
            KnowledgeUnitDraft(
                title=f"{kind.capitalize()}: {brief.sub_concept_name}",
                kind=kind,
                content=(
                    f"{kind.capitalize()} of {brief.sub_concept_name.lower()}, part of "
                    f"{brief.concept_name.lower()}, for learners of {brief.topic}."
                ),
            )
            for kind in kinds
        ]

    def _work(self, subject: str, progress: ProgressCallback) -> None:
        """Spend the configured latency in slices, reporting progress; fail as configured."""
        if self.fail_on and self.fail_on.lower() in subject.lower():
            raise TransientGenerationError(f"offline generator: set to fail on {self.fail_on!r}")
        fail_at = PROGRESS_SLICES // 2 if self._injects_failure(subject) else None
        for slice_no in range(PROGRESS_SLICES):
            if slice_no == fail_at:
                raise TransientGenerationError("offline generator: injected transient failure")
            if self.latency_ms:
                time.sleep(self.latency_ms / 1000 / PROGRESS_SLICES)
            progress(int(100 * (slice_no + 1) / PROGRESS_SLICES))

    def _injects_failure(self, subject: str) -> bool:
        """Decide from the subject and its attempt number, never from unseeded global state."""
        attempt = _attempts_by_subject[subject]
        _attempts_by_subject[subject] += 1
        return _rng("failure", subject, attempt).random() < self.failure_rate

    def _lesson(
        self, brief: ModuleBrief, order: int, minutes: int, rng: random.Random, first_angle: int
    ) -> LessonPlanDraft:
        angle = _ANGLES[(first_angle + order) % len(_ANGLES)]
        title = f"{angle} {brief.module_title}" + (
            f" ({order // len(_ANGLES) + 1})" if order >= len(_ANGLES) else ""
        )
        who = brief.audience or "learners"
        verbs = rng.sample(_VERBS, 3)
        objectives = [
            f"{verbs[0]} the key ideas of {brief.module_title.lower()} in {brief.topic}",
            f"{verbs[1]} {brief.module_title.lower()} to a realistic task for {who}",
            f"{verbs[2]} two approaches and justify a choice in writing",
        ]
        kinds = _ACTIVITY_KINDS[: min(len(_ACTIVITY_KINDS), max(1, minutes // 12))]
        activities = [
            Activity(name=name, kind=kind, duration_minutes=share)
            for (name, kind), share in zip(kinds, split_minutes(minutes, len(kinds)), strict=True)
            if share > 0
        ]
        assessment = (
            f"Short quiz on {brief.module_title.lower()} and a graded exercise: "
            f"learners {verbs[1].lower()} the lesson's ideas to a new case."
        )
        return LessonPlanDraft(
            title=title,
            objectives=objectives,
            activities=activities,
            assessment=assessment,
            duration_minutes=minutes,
        )
