"""Retry, regenerate, and regenerate one piece: a concept, a sub-concept, a module.

The fast tests call the API and the pages with no worker running (what a build looks like the
moment it starts); the slow ones let real worker processes regenerate a piece and check that
only that piece was replaced."""

from __future__ import annotations

import re
from typing import Any

import pytest
from markupsafe import escape
from sqlalchemy import event, func, select

from app.database import utcnow
from app.extensions import db
from app.models import (
    Build,
    BuildStep,
    Concept,
    GeneratorCall,
    KnowledgeUnit,
    LearningPath,
    LessonPlan,
    LessonPlanRun,
    Module,
    SubConcept,
    User,
)
from tests.helpers import (
    build_of,
    create_path,
    create_workflow,
    start_build,
    status_of,
    wait_for_build,
    wait_for_status,
)
from tests.helpers.users import make_user
from tests.helpers.web import PASSWORD, csrf_token, post_form, sign_in
from tests.services import wait_until

# --- helpers -----------------------------------------------------------------------------


def _store_tree(app, path_id: str, concepts: int = 3, subs: int = 2, units: int = 2) -> None:  # type: ignore[no-untyped-def]
    """A tree as a finished build leaves it, except the last sub-concept, whose units are owed."""
    with app.app_context():
        path = db.session.get(LearningPath, path_id)
        path.concepts_generated_at = utcnow()
        for c in range(concepts):
            concept = Concept(path_id=path_id, position=c, name=f"Concept {c}", decomposed_at=utcnow())
            db.session.add(concept)
            for s in range(subs):
                owed = c == concepts - 1 and s == subs - 1
                sub = SubConcept(
                    position=s, name=f"Sub {c}.{s}", units_generated_at=None if owed else utcnow()
                )
                concept.sub_concepts.append(sub)
                if not owed:
                    sub.knowledge_units.extend(
                        KnowledgeUnit(position=u, title=f"Unit {c}.{s}.{u}", kind="text", content="x")
                        for u in range(units)
                    )
        db.session.commit()


def _ended_build(app, path_id: str, status: str) -> str:  # type: ignore[no-untyped-def]
    with app.app_context():
        owner = db.session.scalar(select(LearningPath.owner_id).where(LearningPath.id == path_id))
        build = Build(path_id=path_id, status=status, triggered_by=owner, completed_at=utcnow())
        db.session.add(build)
        db.session.commit()
        return build.id


def _ids(app, model, **where: Any) -> list[int]:  # type: ignore[no-untyped-def]
    with app.app_context():
        query = select(model.id).order_by(model.id)
        for name, value in where.items():
            query = query.where(getattr(model, name) == value)
        return list(db.session.scalars(query))


def _steps(app, build_id: str) -> list[tuple[str, str, int | None]]:  # type: ignore[no-untyped-def]
    with app.app_context():
        rows = db.session.execute(
            select(BuildStep.type, BuildStep.status, BuildStep.parent_step_id)
            .where(BuildStep.build_id == build_id)
            .order_by(BuildStep.id)
        ).all()
    return [tuple(row) for row in rows]


def _row_count(app, model) -> int:  # type: ignore[no-untyped-def]
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model))


def _tree(app, path_id: str) -> dict[int, Any]:  # type: ignore[no-untyped-def]
    """Per concept id: when it was decomposed, and its sub-concepts (id, name, when their units
    were made, and the units as (id, title, content)). SQLite may reuse a deleted row's id, so
    the times, not the ids, prove that a piece was made again."""
    with app.app_context():
        path = db.session.get(LearningPath, path_id)
        return {
            c.id: (
                c.decomposed_at,
                [
                    (
                        s.id,
                        s.name,
                        s.units_generated_at,
                        [(u.id, u.title, u.content) for u in s.knowledge_units],
                    )
                    for s in c.sub_concepts
                ],
            )
            for c in path.concepts
        }


def _build(client, auth, path_id: str, body: dict[str, Any]):  # type: ignore[no-untyped-def]
    return client.post(f"/api/jobs/build/{path_id}", json=body, headers=auth)


# --- retry counts what it carries over ---------------------------------------------------


def test_a_retry_counts_what_it_carries_over_before_any_worker_runs(app, client, auth):
    path_id = create_path(client, auth, concepts=3)
    _store_tree(app, path_id)
    failed = _ended_build(app, path_id, "failed")

    retried = client.post(f"/api/jobs/{failed}/retry", headers=auth)

    assert retried.status_code == 202
    build = build_of(client, auth, retried.get_json()["jobId"])
    assert build["status"] == "processing" and build["scope"] is None
    assert (build["totalConcepts"], build["completedConcepts"]) == (3, 3)
    assert (build["totalSubConcepts"], build["completedSubConcepts"]) == (6, 5)
    assert build["totalKnowledgeUnits"] == build["completedKnowledgeUnits"] == 10
    assert build["progressPercent"] == 91, "20 + 30 + 50 × (1 + 1 + ½) / 3, not 0"
    statuses = [status for _, status, _ in _steps(app, build["id"])]
    assert statuses.count("skipped") == 1 + 3 + 5 and statuses.count("queued") == 1


def _retry_reads(app, client, auth, concepts: int) -> int:  # type: ignore[no-untyped-def]
    """SELECTs run by a retry of a failed build of a path with `concepts` stored concepts."""
    path_id = create_path(client, auth, concepts=concepts)
    _store_tree(app, path_id, concepts=concepts)
    failed = _ended_build(app, path_id, "failed")
    reads: list[str] = []
    with app.app_context():
        engine = db.engine

    def _read(conn, cursor, statement, *args) -> None:  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("SELECT"):
            reads.append(statement)

    event.listen(engine, "before_cursor_execute", _read)
    try:
        assert client.post(f"/api/jobs/{failed}/retry", headers=auth).status_code == 202
    finally:
        event.remove(engine, "before_cursor_execute", _read)
    return len(reads)


def test_planning_a_retry_reads_the_same_for_3_and_60_concepts(app, client, auth):
    _retry_reads(app, client, auth, 2)  # warm up

    assert _retry_reads(app, client, auth, 3) == _retry_reads(app, client, auth, 60)


def test_the_path_page_shows_carried_over_counts_and_keeps_the_tree_marked_as_updating(app, client):
    sign_in(app, client, "ada@example.com")
    with app.app_context():
        owner = db.session.scalar(select(User.id))
        path = LearningPath(owner_id=owner, name="Stats", topic="stats")
        db.session.add(path)
        db.session.commit()
        path_id = path.id
    _store_tree(app, path_id)
    failed = _ended_build(app, path_id, "failed")

    post_form(client, f"/builds/{failed}/retry", {}, page=f"/paths/{path_id}")
    page = client.get(f"/paths/{path_id}").get_data(as_text=True)
    poll = client.get(f"/paths/{path_id}", headers={"HX-Request": "true"}).get_data(as_text=True)

    assert "3 of 3 concepts broken down" in page and "5 of 6 sub-concepts done" in page
    assert "Concept 2" in page and "Sub 2.1" in page, "the tree stays visible while the build runs"
    assert "Being updated" in page and "Nothing generated yet" not in page
    assert 'id="tree-note" hx-swap-oob="true"' in poll and "Being updated" in poll


# --- what each action offers ---------------------------------------------------------------


def _path_page(app, client, status: str) -> str:  # type: ignore[no-untyped-def]
    sign_in(app, client, "ada@example.com")
    with app.app_context():
        path = LearningPath(owner_id=db.session.scalar(select(User.id)), name="Stats", topic="stats")
        db.session.add(path)
        db.session.commit()
        path_id = path.id
    _store_tree(app, path_id)
    _ended_build(app, path_id, status)
    return client.get(f"/paths/{path_id}").get_data(as_text=True)


def test_a_completed_path_offers_regenerate_and_not_a_build_that_would_change_nothing(app, client):
    page = _path_page(app, client, "completed")

    assert "Regenerate…" in page and "asks the model again" in page
    assert "Build again" not in page and ">Retry<" not in page
    assert page.count('class="regenerate"') == 3 + 6, "a Regenerate link per concept and sub-concept"


def test_a_failed_build_offers_retry_and_regenerate_each_explained(app, client):
    page = _path_page(app, client, "failed")

    assert ">Retry<" in page and "Regenerate…" in page
    assert "runs only what did not complete" in page and "replaces the whole tree" in page


# --- the API: regenerate one piece --------------------------------------------------------


@pytest.mark.parametrize(
    "scope",
    [
        pytest.param({}, id="neither id"),
        pytest.param({"conceptId": 1, "subConceptId": 1}, id="both ids"),
        pytest.param({"conceptId": "1"}, id="id as a string"),
        pytest.param({"conceptId": 0}, id="zero"),
        pytest.param({"conceptId": 1.5}, id="fraction"),
        pytest.param({"moduleIndex": 1}, id="unknown field"),
        pytest.param([1], id="not an object"),
    ],
)
def test_a_scope_that_does_not_name_exactly_one_piece_is_a_422_and_writes_nothing(app, client, auth, scope):
    path_id = create_path(client, auth)
    _store_tree(app, path_id)
    before = (_row_count(app, Build), _row_count(app, BuildStep), _tree(app, path_id))

    response = _build(client, auth, path_id, {"fresh": True, "scope": scope})

    assert response.status_code == 422, response.get_json()
    assert response.get_json()["error"]["details"][0]["field"].startswith("scope")
    assert (_row_count(app, Build), _row_count(app, BuildStep), _tree(app, path_id)) == before


def test_a_scope_naming_a_piece_of_another_path_is_a_404_and_writes_nothing(app, client, auth):
    mine, theirs = create_path(client, auth), create_path(client, make_user(app, "eve@example.com"))
    _store_tree(app, mine)
    _store_tree(app, theirs)
    their_concept = _ids(app, Concept, path_id=theirs)[0]
    their_sub = _ids(app, SubConcept, concept_id=their_concept)[0]
    before = (_row_count(app, Build), _tree(app, theirs))

    for scope in ({"conceptId": their_concept}, {"subConceptId": their_sub}, {"conceptId": 99_999}):
        response = _build(client, auth, mine, {"scope": scope})
        assert response.status_code == 404, scope
        assert response.get_json()["error"]["code"] == "not_found"
    assert (_row_count(app, Build), _tree(app, theirs)) == before


def test_a_concept_build_starts_at_that_concept_and_counts_only_it(app, client, auth):
    path_id = create_path(client, auth)
    _store_tree(app, path_id)
    concept = _ids(app, Concept, path_id=path_id)[1]

    response = _build(client, auth, path_id, {"fresh": True, "scope": {"conceptId": concept}})

    assert response.status_code == 202
    assert response.get_json()["scope"] == {"conceptId": concept}
    build = build_of(client, auth, response.get_json()["jobId"])
    assert build["scope"] == {"conceptId": concept} and build["currentStage"] == "sub-concepts"
    assert (build["totalConcepts"], build["completedConcepts"], build["totalSubConcepts"]) == (1, 0, 0)
    assert _steps(app, build["id"]) == [("sub-concepts", "queued", None)]
    with app.app_context():
        assert db.session.get(Build, build["id"]).force_fresh is True
        assert db.session.get(Concept, concept).decomposed_at is None, "owed again"
    assert client.post(f"/api/jobs/{build['id']}/cancel", headers=auth).status_code == 200
    assert build_of(client, auth, build["id"])["status"] == "cancelled"


def test_a_sub_concept_build_starts_at_that_sub_concept_and_counts_only_it(app, client, auth):
    path_id = create_path(client, auth)
    _store_tree(app, path_id)
    sub = _ids(app, SubConcept)[0]

    response = _build(client, auth, path_id, {"scope": {"subConceptId": sub}})

    assert response.status_code == 202 and response.get_json()["scope"] == {"subConceptId": sub}
    build = build_of(client, auth, response.get_json()["jobId"])
    assert (build["totalConcepts"], build["completedConcepts"]) == (1, 1)
    assert (build["totalSubConcepts"], build["completedSubConcepts"], build["totalKnowledgeUnits"]) == (
        1,
        0,
        0,
    )
    assert _steps(app, build["id"]) == [("knowledge-units", "queued", None)]


def test_regenerating_a_piece_while_a_build_is_active_is_a_409_and_resets_nothing(app, client, auth):
    path_id = create_path(client, auth)
    _store_tree(app, path_id)
    active = start_build(client, auth, path_id)
    concept = _ids(app, Concept, path_id=path_id)[0]

    response = _build(client, auth, path_id, {"scope": {"conceptId": concept}})

    assert response.status_code == 409
    assert response.get_json()["error"]["details"] == {"jobId": active}
    with app.app_context():
        assert db.session.get(Concept, concept).decomposed_at is not None
    assert _row_count(app, Build) == 1


# --- the API: regenerate one module -------------------------------------------------------


@pytest.mark.parametrize("index", [3, -1, "1", 1.0, True])
def test_a_module_index_the_workflow_lacks_is_a_422_and_queues_nothing(app, client, auth, index):
    workflow_id = create_workflow(client, auth, modules=3)

    response = client.post(
        f"/api/v3/workflow/{workflow_id}/step10", json={"fresh": True, "moduleIndex": index}, headers=auth
    )

    assert response.status_code == 422, response.get_json()
    assert response.get_json()["error"]["details"][0]["field"] == "moduleIndex"
    assert _row_count(app, LessonPlanRun) == 0
    assert status_of(client, auth, workflow_id)["jobs"]["details"] == []


def test_regenerating_a_module_while_generation_runs_is_a_409(app, client, auth):
    workflow_id = create_workflow(client, auth, modules=3)
    assert client.post(f"/api/v3/workflow/{workflow_id}/step10", headers=auth).status_code == 202

    response = client.post(f"/api/v3/workflow/{workflow_id}/step10", json={"moduleIndex": 2}, headers=auth)

    assert response.status_code == 409
    assert response.get_json()["error"]["code"] == "generation_in_progress"
    assert _row_count(app, LessonPlanRun) == 1


def test_regenerating_one_module_queues_that_module_alone(app, client, auth):
    workflow_id = create_workflow(client, auth, modules=3)
    with app.app_context():
        db.session.execute(Module.__table__.update().values(status="completed"))
        db.session.commit()

    response = client.post(f"/api/v3/workflow/{workflow_id}/step10", json={"moduleIndex": 1}, headers=auth)

    assert response.status_code == 202
    body = response.get_json()
    assert body["data"] == {"jobsQueued": 1, "moduleIndex": 1, "jobId": f"step10-{workflow_id}-module-1"}
    assert body["message"] == "Module 2 (Module 2) will be regenerated in the background."
    details = status_of(client, auth, workflow_id)["jobs"]["details"]
    assert [(d["moduleIndex"], d["state"]) for d in details] == [(1, "waiting")]
    with app.app_context():
        run = db.session.scalar(select(LessonPlanRun))
        assert run.force_fresh is True and run.scope_module_id is not None


# --- the pages: confirm, then regenerate ----------------------------------------------------


def _signed_in_path(app, client) -> str:  # type: ignore[no-untyped-def]
    sign_in(app, client, "ada@example.com")
    with app.app_context():
        path = LearningPath(owner_id=db.session.scalar(select(User.id)), name="Stats", topic="stats")
        db.session.add(path)
        db.session.commit()
        path_id = path.id
    _store_tree(app, path_id)
    return path_id


def test_regenerating_a_concept_from_the_page_asks_first_then_starts_a_build_of_it(app, client):
    path_id = _signed_in_path(app, client)
    concept = _ids(app, Concept, path_id=path_id)[2]

    confirm = client.get(f"/paths/{path_id}/regenerate?concept={concept}").get_data(as_text=True)
    assert _row_count(app, Build) == 0, "asking changes nothing"
    assert "Regenerate concept “Concept 2”?" in confirm and f'name="concept" value="{concept}"' in confirm

    response = post_form(
        client, f"/paths/{path_id}/regenerate", {"concept": str(concept)}, page=f"/paths/{path_id}"
    )

    assert response.status_code == 302 and response.headers["Location"] == f"/paths/{path_id}"
    with app.app_context():
        build = db.session.scalar(select(Build))
        assert (build.scope_kind, build.scope_entity_id, build.force_fresh) == ("concept", concept, True)
    page = client.get(f"/paths/{path_id}").get_data(as_text=True)
    assert "Regenerating concept “Concept 2” only" in page


def test_the_confirm_page_refuses_a_piece_the_path_does_not_have(app, client):
    path_id = _signed_in_path(app, client)

    for query in ("concept=99999", "sub_concept=abc", "concept="):
        assert client.get(f"/paths/{path_id}/regenerate?{query}").status_code == 404, query
    response = post_form(
        client, f"/paths/{path_id}/regenerate", {"sub_concept": "99999"}, page=f"/paths/{path_id}"
    )
    assert response.status_code == 404
    missing_token = client.post(f"/paths/{path_id}/regenerate", data={})
    assert missing_token.status_code == 400
    assert _row_count(app, Build) == 0


def test_regenerating_one_module_from_the_page_asks_first(app, client):
    sign_in(app, client, "ada@example.com")
    url = post_form(
        client, "/workflows", {"workflow-title": "W", "workflow-topic": "t", "workflow-modules": "A\nB"}
    ).headers["Location"]

    assert client.get(f"{url}/regenerate?module=2").status_code == 404
    confirm = client.get(f"{url}/regenerate?module=1").get_data(as_text=True)
    assert "Module 2, “B”" in confirm and _row_count(app, LessonPlanRun) == 0

    response = post_form(client, f"{url}/regenerate", {"module": "1"}, page=url)

    assert response.status_code == 302
    with app.app_context():
        run = db.session.scalar(select(LessonPlanRun))
        module = db.session.get(Module, run.scope_module_id)
        assert (module.position, module.status) == (1, "queued")


# --- with real workers: only the piece is replaced -----------------------------------------


def _calls(app, **where: Any) -> int:  # type: ignore[no-untyped-def]
    with app.app_context():
        query = select(func.count(GeneratorCall.id))
        for name, value in where.items():
            query = query.where(getattr(GeneratorCall, name) == value)
        return db.session.scalar(query)


@pytest.mark.slow
def test_regenerating_one_concept_replaces_only_its_sub_concepts_and_units(app, client, auth, workers):
    path_id = create_path(client, auth, concepts=3)
    workers()
    wait_for_build(client, auth, start_build(client, auth, path_id))
    before = _tree(app, path_id)
    target = list(before)[1]
    asked = utcnow()

    response = _build(client, auth, path_id, {"fresh": True, "scope": {"conceptId": target}})
    build = wait_for_build(client, auth, response.get_json()["jobId"])

    after = _tree(app, path_id)
    assert {c: t for c, t in after.items() if c != target} == {c: t for c, t in before.items() if c != target}
    decomposed_at, subs = after[target]
    assert subs and decomposed_at > asked and all(s[2] > asked for s in subs), "made again"
    assert not _contents(after[target]) & _contents(before[target]), "worded anew: the user sees it was"
    units = sum(len(s[3]) for s in subs)
    assert (build["totalConcepts"], build["completedConcepts"]) == (1, 1)
    assert build["totalSubConcepts"] == build["completedSubConcepts"] == len(subs)
    assert build["totalKnowledgeUnits"] == build["completedKnowledgeUnits"] == units
    assert build["progressPercent"] == 100 and build["scope"] == {"conceptId": target}
    assert _calls(app, build_id=build["id"]) == 1 + len(subs), "asked afresh, for this concept only"
    with app.app_context():
        rows = db.session.scalar(
            select(func.count(KnowledgeUnit.id)).join(SubConcept).where(SubConcept.concept_id == target)
        )
    assert rows == units, "no duplicate"
    assert [(t, s) for t, s, _ in _steps(app, build["id"])] == [("sub-concepts", "completed")] + [
        ("knowledge-units", "completed")
    ] * len(subs)


@pytest.mark.slow
def test_regenerating_one_sub_concept_replaces_only_its_units(app, client, auth, workers):
    path_id = create_path(client, auth, concepts=2)
    workers()
    wait_for_build(client, auth, start_build(client, auth, path_id))
    before = _tree(app, path_id)
    concept = list(before)[0]
    target = before[concept][1][1]
    asked = utcnow()

    response = _build(client, auth, path_id, {"scope": {"subConceptId": target[0]}})
    build = wait_for_build(client, auth, response.get_json()["jobId"])

    after = _tree(app, path_id)
    regenerated = after[concept][1][1]
    assert after[concept][0] == before[concept][0], "the concept was not decomposed again"
    changed = [(c, i) for c in before for i, s in enumerate(before[c][1]) if after[c][1][i] != s]
    assert changed == [(concept, 1)]
    assert regenerated[:2] == target[:2] and regenerated[2] > asked, "the same sub-concept, new units"
    assert build["completedSubConcepts"] == build["totalSubConcepts"] == 1
    assert build["totalKnowledgeUnits"] == len(regenerated[3])
    assert build["progressPercent"] == 100 and _calls(app, build_id=build["id"]) == 1


@pytest.mark.slow
def test_regenerating_one_module_replaces_only_its_lessons(app, client, auth, workers):
    workflow_id = create_workflow(client, auth, modules=3)
    workers()
    client.post(f"/api/v3/workflow/{workflow_id}/step10", headers=auth)
    wait_for_status(client, auth, workflow_id, "complete")
    with app.app_context():
        modules = _ids(app, Module, workflow_id=workflow_id)
    before = {m: _ids(app, LessonPlan, module_id=m) for m in modules}
    assessments = _assessments(app, modules[1])
    calls = {m: _calls(app, module_id=m) for m in modules}

    response = client.post(
        f"/api/v3/workflow/{workflow_id}/step10", json={"fresh": True, "moduleIndex": 1}, headers=auth
    )
    assert response.status_code == 202
    wait_for_status(client, auth, workflow_id, "complete")
    wait_until(
        lambda: _row_count(app, LessonPlanRun) == 2 and not _running_runs(app), message="the run to end"
    )

    after = {m: _ids(app, LessonPlan, module_id=m) for m in modules}
    assert after[modules[0]] == before[modules[0]] and after[modules[2]] == before[modules[2]]
    assert after[modules[1]] and not set(after[modules[1]]) & set(before[modules[1]])
    assert not _assessments(app, modules[1]) & assessments, "worded anew: the user sees it was"
    assert {m: _calls(app, module_id=m) for m in modules} == calls | {modules[1]: calls[modules[1]] + 1}


def _contents(concept: tuple[Any, list[Any]]) -> set[str]:
    """The contents of a concept's units, from `_tree`."""
    return {content for sub in concept[1] for _, _, content in sub[3]}


def _assessments(app, module_id: int) -> set[str]:  # type: ignore[no-untyped-def]
    with app.app_context():
        return set(db.session.scalars(select(LessonPlan.assessment).where(LessonPlan.module_id == module_id)))


def _texts(app, path_id: str) -> list[str]:  # type: ignore[no-untyped-def]
    """Every concept's name and description, and every unit's content, in tree order."""
    with app.app_context():
        path = db.session.get(LearningPath, path_id)
        return [
            text
            for concept in path.concepts
            for text in [concept.name, concept.description or ""]
            + [unit.content for sub in concept.sub_concepts for unit in sub.knowledge_units]
        ]


@pytest.mark.slow
def test_each_regenerate_with_the_offline_generator_reads_differently_from_the_one_before(
    app, client, auth, workers
):
    """With the offline generator a Regenerate gave the very same text: nothing seemed to happen."""
    path_id = create_path(client, auth, concepts=2)
    workers()
    wait_for_build(client, auth, start_build(client, auth, path_id))
    texts = [_texts(app, path_id)]

    for _ in range(2):
        wait_for_build(client, auth, _build(client, auth, path_id, {"fresh": True}).get_json()["jobId"])
        texts.append(_texts(app, path_id))

    first, second, third = texts
    assert first and second and third
    assert second != first and third != second and third != first


def _running_runs(app) -> int:  # type: ignore[no-untyped-def]
    with app.app_context():
        return db.session.scalar(
            select(func.count(LessonPlanRun.id)).where(LessonPlanRun.status == "running")
        )


def test_starting_a_first_build_replaces_nothing_generated_yet_with_being_updated(app, client):
    sign_in(app, client, "ada@example.com")
    with app.app_context():
        path = LearningPath(owner_id=db.session.scalar(select(User.id)), name="New", topic="stats")
        db.session.add(path)
        db.session.commit()
        path_id = path.id
    assert "Nothing generated yet" in client.get(f"/paths/{path_id}").get_data(as_text=True)

    started = post_form(
        client, f"/paths/{path_id}/build", {}, page=f"/paths/{path_id}", headers={"HX-Request": "true"}
    )

    fragment = started.get_data(as_text=True)
    note = fragment[fragment.index('id="tree-note"') :]
    assert "Being updated" in note and "Nothing generated yet" not in note


def test_a_retry_of_a_scoped_build_keeps_its_piece_and_asks_afresh(app, client, auth):
    path_id = create_path(client, auth)
    _store_tree(app, path_id)
    concept = _ids(app, Concept, path_id=path_id)[0]
    first = _build(client, auth, path_id, {"scope": {"conceptId": concept}}).get_json()["jobId"]
    client.post(f"/api/jobs/{first}/cancel", headers=auth)

    retried = client.post(f"/api/jobs/{first}/retry", headers=auth)

    assert retried.status_code == 202
    build = build_of(client, auth, retried.get_json()["jobId"])
    assert build["scope"] == {"conceptId": concept} and build["retryOf"] == first
    assert build["totalConcepts"] == 1 and _steps(app, build["id"]) == [("sub-concepts", "queued", None)]
    with app.app_context():
        assert db.session.get(Build, build["id"]).force_fresh is True, "a stored answer is not reused"


def test_a_retry_of_a_scoped_build_whose_piece_is_gone_is_a_400(app, client, auth):
    path_id = create_path(client, auth)
    _store_tree(app, path_id)
    concept = _ids(app, Concept, path_id=path_id)[0]
    first = _build(client, auth, path_id, {"scope": {"conceptId": concept}}).get_json()["jobId"]
    client.post(f"/api/jobs/{first}/cancel", headers=auth)
    with app.app_context():
        db.session.delete(db.session.get(Concept, concept))
        db.session.commit()

    retried = client.post(f"/api/jobs/{first}/retry", headers=auth)

    assert retried.status_code == 400 and retried.get_json()["error"]["code"] == "invalid_state"
    assert "gone" in retried.get_json()["error"]["message"] and _row_count(app, Build) == 1


def test_a_complete_workflow_offers_regenerate_all_and_per_module_not_generate(app, client):
    sign_in(app, client, "ada@example.com")
    url = post_form(
        client, "/workflows", {"workflow-title": "W", "workflow-topic": "t", "workflow-modules": "A\nB\nC"}
    ).headers["Location"]
    with app.app_context():
        db.session.execute(Module.__table__.update().values(status="completed"))
        db.session.commit()

    page = client.get(url).get_data(as_text=True)

    assert "Regenerate all…" in page and page.count('class="regenerate"') == 3
    assert "Generate lesson plans</button>" not in page and "Resume generation</button>" not in page
    assert "asks the model" in page


def test_retry_of_a_build_whose_path_was_completed_since_is_refused_and_writes_nothing(app, client, auth):
    path_id = create_path(client, auth, concepts=2)
    _store_tree(app, path_id, concepts=2)
    with app.app_context():  # the one owed sub-concept was generated since, by a later build
        db.session.execute(
            SubConcept.__table__.update()
            .values(units_generated_at=utcnow())
            .where(SubConcept.units_generated_at.is_(None))
        )
        db.session.commit()
    cancelled = _ended_build(app, path_id, "cancelled")
    before = _count(app, Build)

    response = client.post(f"/api/jobs/{cancelled}/retry", headers=auth)

    assert response.status_code == 400
    assert "Nothing is left to retry" in response.get_json()["error"]["message"]
    assert _count(app, Build) == before


def _count(app, model) -> int:  # type: ignore[no-untyped-def]
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model))


def test_the_panel_of_a_concept_build_names_the_concept_by_its_number_and_title(app, client):
    path_id = _signed_in_path(app, client)
    concept = _ids(app, Concept, path_id=path_id)[2]

    post_form(client, f"/paths/{path_id}/regenerate", {"concept": str(concept)}, page=f"/paths/{path_id}")
    poll = client.get(f"/paths/{path_id}", headers={"HX-Request": "true"}).get_data(as_text=True)

    heading = re.search(r"<h2>(.*?)<span", poll, flags=re.S)
    assert heading and " ".join(heading.group(1).split()) == "Regenerating concept 3: Concept 2"


def test_the_panel_of_a_sub_concept_build_names_it_as_concept_dot_sub_concept(app, client):
    path_id = _signed_in_path(app, client)
    sub = _ids(app, SubConcept)[3]  # concept 2's second sub-concept

    post_form(client, f"/paths/{path_id}/regenerate", {"sub_concept": str(sub)}, page=f"/paths/{path_id}")
    page = client.get(f"/paths/{path_id}").get_data(as_text=True)

    heading = re.search(r'<section id="panel".*?<h2>(.*?)<span', page, flags=re.S)
    assert heading and " ".join(heading.group(1).split()) == "Regenerating sub-concept 2.2: Sub 1.1"


@pytest.mark.slow
def test_a_whole_path_regenerate_keeps_the_old_tree_on_the_page_until_the_new_one_is_done(
    app, client, auth, workers
):
    path_id = create_path(client, auth, concepts=2)
    workers(GENERATOR_LATENCY_MS="1500")  # the new tree takes seconds to grow after its concepts
    wait_for_build(client, auth, start_build(client, auth, path_id), timeout=120)
    old_subs = [name for _, subs in _tree(app, path_id).values() for _, name, *_ in subs]
    client.post(
        "/sign-in",
        data={"email": "designer@example.com", "password": PASSWORD, "csrf_token": csrf_token(client)},
    )

    response = _build(client, auth, path_id, {"fresh": True})
    build_id = response.get_json()["jobId"]

    def new_concepts_stored_but_not_broken_down() -> bool:
        with app.app_context():
            path = db.session.get(LearningPath, path_id)
            subs = db.session.scalar(
                select(func.count(SubConcept.id)).join(Concept).where(Concept.path_id == path_id)
            )
            return path.concepts_generated_at is not None and subs == 0

    wait_until(new_concepts_stored_but_not_broken_down, timeout=60, interval=0.05, message="the new concepts")
    during = client.get(f"/paths/{path_id}").get_data(as_text=True)
    wait_for_build(client, auth, build_id, timeout=120)
    after = client.get(f"/paths/{path_id}").get_data(as_text=True)

    assert old_subs and all(str(escape(name)) in during for name in old_subs), (
        "the old tree, sub-concepts and all"
    )
    assert 'class="tree previous"' in during and "Being updated" in during
    assert 'class="tree previous"' not in after and "Being updated" not in after
    new_subs = [name for _, subs in _tree(app, path_id).values() for _, name, *_ in subs]
    assert new_subs and all(str(escape(name)) in after for name in new_subs), (
        "the new tree once the build ends"
    )
