"""Learning-path builds end to end: real Redis, several real worker processes, real SQLite."""

from __future__ import annotations

import time
from itertools import combinations

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.generators.offline import OfflineGenerator
from app.generators.schemas import PathBrief
from app.models import BuildStep, Concept, KnowledgeUnit, SubConcept
from tests.helpers import build_of, create_path, start_build, wait_for_build
from tests.helpers.builds import failing_sub_concept

pytestmark = pytest.mark.slow


def _row_counts(app, path_id) -> dict[str, int]:  # type: ignore[no-untyped-def]
    with app.app_context():
        concepts = select(Concept.id).where(Concept.path_id == path_id)
        subs = select(SubConcept.id).where(SubConcept.concept_id.in_(concepts))
        return {
            "concepts": db.session.scalar(select(func.count()).select_from(concepts.subquery())),
            "subs": db.session.scalar(select(func.count()).select_from(subs.subquery())),
            "units": db.session.scalar(
                select(func.count(KnowledgeUnit.id)).where(KnowledgeUnit.sub_concept_id.in_(subs))
            ),
        }


def _steps(app, build_id, kind=None) -> list[BuildStep]:  # type: ignore[no-untyped-def]
    with app.app_context():
        query = select(BuildStep).where(BuildStep.build_id == build_id).order_by(BuildStep.id)
        if kind:
            query = query.where(BuildStep.type == kind)
        return list(db.session.scalars(query))


def test_a_build_completes_with_exact_counts_and_parallel_steps(app, client, auth, workers):
    path_id = create_path(client, auth, concepts=6)
    workers(GENERATOR_LATENCY_MS="200")

    build_id = start_build(client, auth, path_id)
    samples = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        build = build_of(client, auth, build_id)
        samples.append(build["progressPercent"])
        if build["status"] not in ("pending", "processing"):
            break
        time.sleep(0.1)

    assert build["status"] == "completed", build
    rows = _row_counts(app, path_id)
    assert build["totalConcepts"] == build["completedConcepts"] == rows["concepts"] == 6
    assert build["totalSubConcepts"] == build["completedSubConcepts"] == rows["subs"]
    assert build["totalKnowledgeUnits"] == build["completedKnowledgeUnits"] == rows["units"]
    assert samples == sorted(samples), f"progress went down: {samples}"
    assert samples[-1] == 100 and max(samples[:-1]) < 100
    units = _steps(app, build_id, "knowledge-units")
    assert len(units) == rows["subs"] and all(s.status == "completed" for s in units)
    overlapping = [
        (a, b)
        for a, b in combinations(units, 2)
        if a.started_at < b.completed_at and b.started_at < a.completed_at
    ]
    assert overlapping, "with two generate-ku workers, knowledge-unit steps must overlap in time"


def test_the_tree_is_returned_whole_in_order(app, client, auth, workers):
    path_id = create_path(client, auth, concepts=2)
    workers()
    wait_for_build(client, auth, start_build(client, auth, path_id))

    path = client.get(f"/api/learning-paths/{path_id}", headers=auth).get_json()

    brief = PathBrief(name="Statistics for Nurses", topic="statistics", concept_count=2)
    expected = [c.name for c in OfflineGenerator().concepts(brief, lambda _: None)]
    assert [c["name"] for c in path["concepts"]] == expected
    first = path["concepts"][0]
    assert first["subConcepts"] and all(sub["knowledgeUnits"] for sub in first["subConcepts"])
    assert path["latestBuild"]["status"] == "completed"


def test_a_sub_concept_that_always_fails_fails_the_build_and_retry_reruns_only_it(app, client, auth, workers):
    doomed = failing_sub_concept()
    path_id = create_path(client, auth, concepts=3)
    broken = workers(GENERATOR_FAIL_ON=doomed)

    build = wait_for_build(client, auth, start_build(client, auth, path_id), "failed")

    assert build["errorCount"] == 1 and build["errorCategories"] == {"provider_error": 1}
    assert doomed in build["error"] and build["error"].startswith("1 step(s) failed")
    failed = [s for s in _steps(app, build["id"]) if s.status == "failed"]
    assert [s.entity_name for s in failed] == [doomed] and failed[0].failed_attempts == 3
    assert "fail on" in failed[0].traceback
    letters = client.get("/api/dead-letter", headers=auth).get_json()
    assert [(d["entityName"], d["category"]) for d in letters] == [(doomed, "provider_error")]
    rows = _row_counts(app, path_id)
    assert rows["units"] == build["completedKnowledgeUnits"] > 0, "the other units are kept"

    broken.stop()
    workers()
    retried = client.post(f"/api/jobs/{build['id']}/retry", headers=auth)
    assert retried.status_code == 202
    second = wait_for_build(client, auth, retried.get_json()["jobId"])

    steps = _steps(app, second["id"])
    ran = [s for s in steps if s.status == "completed"]
    assert [(s.type, s.entity_name) for s in ran] == [("knowledge-units", doomed)]
    assert all(s.status == "skipped" for s in steps if s not in ran)
    after = _row_counts(app, path_id)
    assert after["concepts"] == rows["concepts"] and after["subs"] == rows["subs"]
    assert second["totalKnowledgeUnits"] == after["units"] > rows["units"]
    assert second["progressPercent"] == 100
