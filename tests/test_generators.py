"""The offline generator: deterministic, plausible, and failing only as configured."""

from __future__ import annotations

import subprocess
import sys

import pytest

from app.generators.errors import TransientGenerationError
from app.generators.factory import build_generator
from app.generators.offline import OfflineGenerator, split_minutes
from app.generators.schemas import ConceptBrief, ModuleBrief, PathBrief, SubConceptBrief
from tests.services import ROOT

BRIEF = ModuleBrief(
    workflow_title="Data Literacy",
    topic="Data literacy",
    audience="Ward nurses",
    module_title="Reading charts",
    module_index=0,
    total_modules=4,
    contact_hours=2.5,
)


def test_same_input_gives_the_same_lesson_plans():
    first = OfflineGenerator().lesson_plans(BRIEF, progress=lambda _: None)
    second = OfflineGenerator().lesson_plans(BRIEF, progress=lambda _: None)

    assert first == second
    assert first != OfflineGenerator().lesson_plans(
        BRIEF.model_copy(update={"module_title": "Spreadsheets"}), progress=lambda _: None
    )


@pytest.mark.parametrize("contact_hours", [2.5, 6, 40])
def test_a_modules_lessons_have_different_titles(contact_hours: float) -> None:
    """A new user saw 'Evaluating Reading charts' twice in one module: each lesson drew its
    angle at random."""
    brief = BRIEF.model_copy(update={"contact_hours": contact_hours})
    titles = [lesson.title for lesson in OfflineGenerator().lesson_plans(brief, progress=lambda _: None)]

    assert len(titles) > 1 and len(set(titles)) == len(titles), titles


def test_lessons_fill_exactly_the_modules_contact_hours_with_measurable_objectives():
    lessons = OfflineGenerator().lesson_plans(BRIEF, progress=lambda _: None)

    assert sum(lesson.duration_minutes for lesson in lessons) == 150
    for lesson in lessons:
        assert "Reading charts" in lesson.title
        assert sum(a.duration_minutes for a in lesson.activities) == lesson.duration_minutes
        assert all(
            objective.split()[0]
            in {"Explain", "Apply", "Compare", "Analyse", "Design", "Evaluate", "Demonstrate", "Classify"}
            for objective in lesson.objectives
        )


def test_progress_is_reported_up_to_100():
    seen: list[int] = []

    OfflineGenerator().lesson_plans(BRIEF, progress=seen.append)

    assert seen == sorted(seen) and seen[-1] == 100


def test_failure_rate_one_always_fails_transiently_and_zero_never_does():
    with pytest.raises(TransientGenerationError):
        OfflineGenerator(failure_rate=1.0).lesson_plans(BRIEF, progress=lambda _: None)
    for _ in range(20):
        OfflineGenerator(failure_rate=0.0).lesson_plans(BRIEF, progress=lambda _: None)


def test_fail_on_matches_a_title_fragment_case_insensitively():
    with pytest.raises(TransientGenerationError, match="fail on 'reading'"):
        OfflineGenerator(fail_on="reading").lesson_plans(BRIEF, progress=lambda _: None)
    OfflineGenerator(fail_on="algebra").lesson_plans(BRIEF, progress=lambda _: None)


# Each attempt runs in a fresh interpreter: with unseeded `random`, two processes would disagree.
FAILURE_PATTERN_SCRIPT = """
from app.generators.errors import TransientGenerationError
from app.generators.offline import OfflineGenerator
from app.generators.schemas import ModuleBrief
brief = ModuleBrief.model_validate_json({brief!r})
pattern = ""
for _ in range(16):
    try:
        OfflineGenerator(failure_rate=0.5).lesson_plans(brief, progress=lambda _: None)
        pattern += "."
    except TransientGenerationError:
        pattern += "x"
print(pattern)
"""


def _failure_pattern_in_a_new_process() -> str:
    done = subprocess.run(
        [sys.executable, "-c", FAILURE_PATTERN_SCRIPT.format(brief=BRIEF.model_dump_json())],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


@pytest.mark.slow
def test_injected_failures_follow_the_brief_and_its_attempt_number_not_chance():
    first, second = _failure_pattern_in_a_new_process(), _failure_pattern_in_a_new_process()

    assert first == second
    assert "x" in first and "." in first, "a retry must get a fresh draw, or a failure would be forever"


def test_same_concept_gives_the_same_sub_concepts_and_units():
    brief = ConceptBrief(
        path_name="Stats",
        topic="statistics",
        concept_name="Sampling",
        concept_description="",
        position=0,
        total_concepts=3,
    )

    assert OfflineGenerator().sub_concepts(brief, lambda _: None) == OfflineGenerator().sub_concepts(
        brief, lambda _: None
    )


PATH = PathBrief(name="Statistics for Nurses", topic="statistics", concept_count=3)
CONCEPT = ConceptBrief(
    path_name="Stats",
    topic="statistics",
    concept_name="Sampling",
    concept_description="",
    position=0,
    total_concepts=3,
)
SUB_CONCEPT = SubConceptBrief(
    topic="statistics",
    concept_name="Sampling",
    sub_concept_name="Examples: Sampling",
    sub_concept_description="",
    position=0,
)


def _everything(generator: OfflineGenerator) -> list[object]:
    """One draft list of each kind the generator makes."""
    return [
        generator.concepts(PATH, lambda _: None),
        generator.sub_concepts(CONCEPT, lambda _: None),
        generator.knowledge_units(SUB_CONCEPT, lambda _: None),
        generator.lesson_plans(BRIEF, lambda _: None),
    ]


def test_the_first_generation_reads_as_it_always_has():
    """Tests and the README's examples quote the offline generator's first answers word for word."""
    concepts, _, units, lessons = _everything(OfflineGenerator())

    assert (concepts[0].name, concepts[0].description) == (
        "Foundations of statistics",
        "What Statistics for Nurses needs on foundations of statistics.",
    )
    kind = units[0].kind.capitalize()
    assert units[0].content == f"{kind} of examples: sampling, part of sampling, for learners of statistics."
    assert lessons[0].assessment.startswith("Short quiz on reading charts and a graded exercise: learners ")


@pytest.mark.parametrize("regeneration", [1, 2, 3, 4])
def test_each_regeneration_reads_differently_from_the_one_before(regeneration):
    """A user who clicks Regenerate sees new text, as a model would give: every kind of draft differs."""
    before = _everything(OfflineGenerator(regeneration=regeneration - 1))
    after = _everything(OfflineGenerator(regeneration=regeneration))

    for drafts_before, drafts_after in zip(before, after, strict=True):
        assert drafts_before != drafts_after


@pytest.mark.parametrize("regeneration", [0, 1, 5])
def test_a_regeneration_reads_the_same_every_time_it_is_made(regeneration):
    assert _everything(OfflineGenerator(regeneration=regeneration)) == _everything(
        OfflineGenerator(regeneration=regeneration)
    )


def test_a_regeneration_keeps_the_shapes_other_tests_rely_on():
    """Sub-concepts are named '<facet>: <concept>', concepts carry no ': ', lessons name their module."""
    for regeneration in range(4):
        concepts, subs, _, lessons = _everything(OfflineGenerator(regeneration=regeneration))
        assert all(": " not in concept.name for concept in concepts)
        assert all(sub.name.endswith(": Sampling") for sub in subs)
        assert all("Reading charts" in lesson.title for lesson in lessons)
        assert sum(lesson.duration_minutes for lesson in lessons) == 150


@pytest.mark.parametrize(("total", "parts"), [(150, 3), (7, 3), (1, 1), (100, 7)])
def test_split_minutes_sums_to_the_total_and_differs_by_at_most_one(total, parts):
    shares = split_minutes(total, parts)

    assert sum(shares) == total and max(shares) - min(shares) <= 1


def test_an_unknown_generator_name_is_refused():
    with pytest.raises(ValueError, match="GENERATOR='gpt-9'"):
        build_generator({"GENERATOR": "gpt-9"})


def test_a_provider_generator_is_not_built_without_the_pipelines_services() -> None:
    with pytest.raises(ValueError, match="needs the pipelines' provider services"):
        build_generator({"GENERATOR": "openai"})
