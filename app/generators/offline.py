"""A generator that needs no network: plausible, deterministic content from the input alone.

Knobs for demos and tests: a latency per call (so progress can be watched), a rate of
injected transient failures, and a title fragment that makes matching input fail on every
attempt (so retries run out).

A regenerate must visibly do something, as a model's new answer would: the n-th regeneration
(`regeneration`, 0 for the first generation) draws its choices from its own seed and words
its descriptions, contents and assessments the n-th way, so it never reads like the one before
it. The first generation always reads the same, and so does the n-th: tests stay reproducible.
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
# Each concept angle as the first generation says it, then as regenerations may (in teaching order).
_CONCEPT_ANGLES = [
    ("Foundations of", "First principles of", "Groundwork in"),
    ("Core vocabulary of", "Key terms in", "The language of"),
    ("Tools for", "Instruments of", "Toolkits for"),
    ("Methods in", "Techniques in", "Approaches to"),
    ("Patterns in", "Recurring structures in", "Regularities in"),
    ("Quality and ethics in", "Good practice in", "Responsible practice in"),
    ("Applying", "Putting to work", "Using"),
    ("Advanced topics in", "Further study in", "Frontiers of"),
]
# Wordings, the first generation's first; `{}` fields are filled by name.
_CONCEPT_DESCRIPTIONS = (
    "What {name} needs on {angle} {topic}.",
    "{Angle} {topic}, as {name} needs it.",
    "For {name}: {angle} {topic}, from the ground up.",
)
_SUB_CONCEPT_DESCRIPTIONS = (
    "The {facet} of {concept}.",
    "{Facet} of {concept}, step by step.",
    "A closer look at the {facet} of {concept}.",
)
_UNIT_CONTENTS = (
    "{Kind} of {sub}, part of {concept}, for learners of {topic}.",
    "For learners of {topic}: {kind} of {sub}, within {concept}.",
    "{Kind} on {sub} ({concept}), written for learners of {topic}.",
)
_ASSESSMENTS = (
    "Short quiz on {module} and a graded exercise: learners {verb} the lesson's ideas to a new case.",
    "Exit ticket on {module}, then a marked task: learners {verb} the lesson's ideas to a case of their own.",
    "Peer-reviewed task on {module}: learners {verb} the lesson's ideas to a case from their work.",
)
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


def _worded(wordings: tuple[str, ...], regeneration: int, **fields: str) -> str:
    """The regeneration's wording (cycling, so two in a row differ), with `{field}` filled in as
    given and `{Field}` capitalised."""
    capitalised = {name.capitalize(): value[:1].upper() + value[1:] for name, value in fields.items()}
    return wordings[regeneration % len(wordings)].format(**fields, **capitalised)


def split_minutes(total: int, parts: int) -> list[int]:
    """Split `total` into `parts` whole numbers that differ by at most one and sum to it."""
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


class OfflineGenerator:
    def __init__(
        self, latency_ms: int = 0, failure_rate: float = 0.0, fail_on: str = "", regeneration: int = 0
    ) -> None:
        self.latency_ms = latency_ms
        self.failure_rate = failure_rate
        self.fail_on = fail_on
        self.regeneration = regeneration

    def _seeded(self, *parts: object) -> random.Random:
        """The draws for `parts`: the first generation's as ever, each regeneration's its own."""
        return _rng(*parts, *([f"regeneration {self.regeneration}"] if self.regeneration else []))

    def lesson_plans(self, brief: ModuleBrief, progress: ProgressCallback) -> list[LessonPlanDraft]:
        self._work(brief.module_title, progress)
        total_minutes = max(1, round(brief.contact_hours * 60))
        count = max(1, math.ceil(total_minutes / LESSON_MINUTES))
        rng = self._seeded(brief.topic, brief.audience, brief.module_title, brief.contact_hours)
        first_angle = rng.randrange(len(_ANGLES))  # one start per module: its titles differ
        return [
            self._lesson(brief, order, minutes, rng, first_angle)
            for order, minutes in enumerate(split_minutes(total_minutes, count))
        ]

    def concepts(self, brief: PathBrief, progress: ProgressCallback) -> list[ConceptDraft]:
        self._work(brief.name, progress)
        count = brief.concept_count or DEFAULT_CONCEPTS
        # Foundations first: a teaching order, each angle worded as this regeneration words it.
        angles = [wordings[self.regeneration % len(wordings)] for wordings in _CONCEPT_ANGLES]
        return [
            ConceptDraft(
                name=f"{angles[i % len(angles)]} {brief.topic}"
                + (f" ({i // len(angles) + 1})" if i >= len(angles) else ""),
                description=_worded(
                    _CONCEPT_DESCRIPTIONS,
                    self.regeneration,
                    name=brief.name,
                    angle=angles[i % len(angles)].lower(),
                    topic=brief.topic,
                ),
            )
            for i in range(count)
        ]

    def sub_concepts(self, brief: ConceptBrief, progress: ProgressCallback) -> list[SubConceptDraft]:
        self._work(brief.concept_name, progress)
        rng = self._seeded("sub-concepts", brief.topic, brief.concept_name)
        facets = rng.sample(_FACETS, rng.randint(3, 5))
        return [
            SubConceptDraft(
                name=f"{facet}: {brief.concept_name}",
                description=_worded(
                    _SUB_CONCEPT_DESCRIPTIONS,
                    self.regeneration,
                    facet=facet.lower(),
                    concept=brief.concept_name.lower(),
                ),
            )
            for facet in facets
        ]

    def knowledge_units(self, brief: SubConceptBrief, progress: ProgressCallback) -> list[KnowledgeUnitDraft]:
        self._work(brief.sub_concept_name, progress)
        rng = self._seeded("units", brief.topic, brief.sub_concept_name)
        kinds = rng.sample(_UNIT_KINDS, rng.randint(2, 4))
        return [
            KnowledgeUnitDraft(
                title=f"{kind.capitalize()}: {brief.sub_concept_name}",
                kind=kind,
                content=_worded(
                    _UNIT_CONTENTS,
                    self.regeneration,
                    kind=kind,
                    sub=brief.sub_concept_name.lower(),
                    concept=brief.concept_name.lower(),
                    topic=brief.topic,
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
        assessment = _worded(
            _ASSESSMENTS, self.regeneration, module=brief.module_title.lower(), verb=verbs[1].lower()
        )
        return LessonPlanDraft(
            title=title,
            objectives=objectives,
            activities=activities,
            assessment=assessment,
            duration_minutes=minutes,
        )
