"""Reads whose cost does not grow with the number of rows: a fixed number of queries for 2
items or 22, and lists that come one page at a time."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import insert, select

from app.database import utcnow
from app.extensions import db
from app.models import (
    Build,
    BuildStep,
    Concept,
    DeadLetter,
    KnowledgeUnit,
    LearningPath,
    LessonPlan,
    LessonPlanRun,
    Module,
    StepType,
    SubConcept,
    User,
    Workflow,
)
from tests.helpers import create_path, start_build
from tests.helpers.queries import QueryCounter
from tests.helpers.web import sign_in

OWNER = "designer@example.com"


def _owner_id(email: str = OWNER) -> int:
    return db.session.scalar(select(User.id).where(User.email == email))


def _add_workflows(app: Flask, count: int, email: str = OWNER) -> None:
    """Workflows of three modules, each with an old failed run and a newer complete one."""
    with app.app_context():
        owner, now = _owner_id(email), utcnow()
        for i in range(count):
            workflow = Workflow(
                owner_id=owner,
                title=f"Workflow {i}",
                topic="t",
                modules=[Module(position=p, title=f"M{p}", contact_hours=1) for p in range(3)],
            )
            db.session.add(workflow)
            db.session.flush()
            db.session.add_all(
                [
                    LessonPlanRun(
                        workflow_id=workflow.id, status="failed", created_at=now - timedelta(hours=1)
                    ),
                    LessonPlanRun(workflow_id=workflow.id, status="complete", created_at=now),
                ]
            )
        db.session.commit()


def _add_builds(app: Flask, path_id: str, count: int) -> list[str]:
    """Failed builds of the path, each with a failed step and its dead letter, newest last."""
    with app.app_context():
        owner, now, ids = _owner_id(), utcnow(), []
        for i in range(count):
            build = Build(
                path_id=path_id,
                triggered_by=owner,
                status="failed",
                total_concepts=2,
                completed_concepts=1,
                created_at=now + timedelta(seconds=i),
            )
            db.session.add(build)
            db.session.flush()
            step = BuildStep(
                build_id=build.id, type=StepType.CONCEPTS, status="failed", error="boom", error_category="x"
            )
            db.session.add(step)
            db.session.flush()
            db.session.add(DeadLetter(build_id=build.id, step_id=step.id, original_queue="q", error="boom"))
            ids.append(build.id)
        db.session.commit()
        return ids


def _new_path(app: Flask, name: str = "Path") -> str:
    with app.app_context():
        path = LearningPath(owner_id=_owner_id(), name=name, topic="t")
        db.session.add(path)
        db.session.commit()
        return path.id


def _queries(app: Flask, client: FlaskClient, url: str, headers: dict[str, str] | None = None) -> int:
    with QueryCounter(app) as counter:
        response = client.get(url, headers=headers or {})
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    return counter.count


# --- no query per row ------------------------------------------------------------------------


def test_the_home_page_costs_the_same_queries_for_2_and_22_workflows_and_paths(app, client):
    sign_in(app, client, OWNER)
    _add_workflows(app, 2)
    for path_id in (_new_path(app, f"P{i}") for i in range(2)):
        _add_builds(app, path_id, 2)
    _queries(app, client, "/")  # warm up: the first request of a session loads the user
    few = _queries(app, client, "/")

    _add_workflows(app, 20)
    for path_id in (_new_path(app, f"Q{i}") for i in range(20)):
        _add_builds(app, path_id, 3)
    many = _queries(app, client, "/")

    assert few == many
    page = client.get("/").get_data(as_text=True)
    assert page.count("Workflow ") == 22 and page.count(">completed<") == 22, "the newest run's status"
    assert page.count(">failed<") == 22, "each path's newest build"


@pytest.mark.parametrize("route", ["/api/jobs", "/api/jobs/path/{path_id}", "/api/dead-letter"])
def test_a_build_list_costs_the_same_queries_for_2_and_22_builds(app, client, auth, route):
    path_id = _new_path(app)
    url = route.format(path_id=path_id)
    _add_builds(app, path_id, 2)
    _queries(app, client, url, auth)  # warm up: a token's first use records it
    few = _queries(app, client, url, auth)

    for other in (_new_path(app, f"Other {i}") for i in range(10)):
        _add_builds(app, other, 1)
    _add_builds(app, path_id, 10)

    assert _queries(app, client, url, auth) == few


def test_the_batched_build_list_still_shows_each_builds_own_path_and_categories(app, client, auth):
    paths = [_new_path(app, f"Path {i}") for i in range(3)]
    for path_id in paths:
        _add_builds(app, path_id, 2)

    listed = client.get("/api/jobs", headers=auth).get_json()
    letters = client.get("/api/dead-letter", headers=auth).get_json()

    assert len(listed) == 6 and all(b["errorCategories"] == {"x": 1} for b in listed)
    with app.app_context():
        names = dict(db.session.execute(select(LearningPath.id, LearningPath.name)).all())
    assert all(b["path"] == {"id": b["pathId"], "name": names[b["pathId"]]} for b in listed)
    assert len(letters) == 6 and all(letter["stepType"] == "concepts" for letter in letters)


def test_the_orchestrators_fan_out_costs_the_same_queries_for_3_and_12_stored_concepts(
    app, client, auth, redis_server
):
    small = _fan_out_queries(app, client, auth, concepts=3)
    large = _fan_out_queries(app, client, auth, concepts=12)

    assert small == large


def _fan_out_queries(app: Flask, client: FlaskClient, auth: dict[str, str], concepts: int) -> int:
    """Start a build of a path whose concepts are already decomposed,
    with three units stored under every sub-concept but the last (so there is work to do)."""
    path_id = create_path(client, auth, concepts=concepts, name=f"Stored {concepts}")
    with app.app_context():
        path = db.session.get(LearningPath, path_id)
        path.concepts_generated_at = utcnow()
        for c in range(concepts):
            concept = Concept(path_id=path_id, position=c, name=f"C{c}", decomposed_at=utcnow())
            db.session.add(concept)
            db.session.flush()
            for s in range(3):
                last = c == concepts - 1 and s == 2
                sub = SubConcept(
                    concept_id=concept.id,
                    position=s,
                    name=f"S{c}.{s}",
                    units_generated_at=None if last else utcnow(),
                )
                db.session.add(sub)
                db.session.flush()
                if not last:
                    db.session.execute(
                        insert(KnowledgeUnit),
                        [
                            {
                                "sub_concept_id": sub.id,
                                "position": u,
                                "title": "u",
                                "kind": "k",
                                "content": "c",
                            }
                            for u in range(3)
                        ],
                    )
        db.session.commit()
    # The fan-out of stored concepts happens when the build starts (its orchestrator is skipped).
    with QueryCounter(app) as counter:
        build_id = start_build(client, auth, path_id)
    with app.app_context():
        build = db.session.get(Build, build_id)
        assert (build.total_concepts, build.completed_concepts) == (concepts, concepts)
        assert (build.total_sub_concepts, build.completed_sub_concepts) == (3 * concepts, 3 * concepts - 1)
        assert build.completed_knowledge_units == 3 * (3 * concepts - 1)
    return counter.count


# --- one page at a time --------------------------------------------------------------------


def _build_with_steps(app: Flask, path_id: str, steps: int) -> str:
    (build_id,) = _add_builds(app, path_id, 1)
    with app.app_context():
        db.session.execute(
            insert(BuildStep),
            [
                {
                    "build_id": build_id,
                    "type": "knowledge-units",
                    "entity_id": i,
                    "entity_name": f"Unit {i}",
                    "status": "cancelled",
                    "error": "cancelled by request",
                    "created_at": utcnow(),
                }
                for i in range(steps)
            ],
        )
        db.session.commit()
    return build_id


def test_a_builds_steps_come_one_bounded_page_at_a_time(app, client, auth):
    build_id = _build_with_steps(app, _new_path(app), 1000)

    first = client.get(f"/api/jobs/{build_id}/steps", headers=auth)
    last = client.get(f"/api/jobs/{build_id}/steps?page=11&limit=100", headers=auth).get_json()
    past = client.get(f"/api/jobs/{build_id}/steps?page=12&limit=100", headers=auth).get_json()
    cancelled = client.get(f"/api/jobs/{build_id}/steps?status=cancelled&limit=100", headers=auth).get_json()

    assert first.status_code == 200 and len(first.data) < 20_000, "was 981 KB for a 1,000-concept build"
    body = first.get_json()
    assert len(body["data"]) == 20
    assert body["pagination"] == {"page": 1, "limit": 20, "total": 1001, "totalPages": 51}
    assert [s["id"] for s in body["data"]] == sorted(s["id"] for s in body["data"])
    assert [s["entityName"] for s in last["data"]] == ["Unit 999"]
    assert past["data"] == [] and past["pagination"]["total"] == 1001
    assert cancelled["pagination"]["total"] == 1000


def test_a_step_page_costs_the_same_queries_for_10_and_1000_steps(app, client, auth):
    small = _build_with_steps(app, _new_path(app, "Small"), 10)
    large = _build_with_steps(app, _new_path(app, "Large"), 1000)
    _queries(app, client, f"/api/jobs/{small}/steps", auth)

    assert _queries(app, client, f"/api/jobs/{small}/steps", auth) == _queries(
        app, client, f"/api/jobs/{large}/steps", auth
    )


def test_a_paths_builds_come_one_page_at_a_time_newest_first(app, client, auth):
    path_id = _new_path(app)
    ids = _add_builds(app, path_id, 25)

    first = client.get(f"/api/jobs/path/{path_id}", headers=auth).get_json()
    second = client.get(f"/api/jobs/path/{path_id}?page=2", headers=auth).get_json()

    assert [b["id"] for b in first["data"] + second["data"]] == ids[::-1]
    assert first["pagination"] == {"page": 1, "limit": 20, "total": 25, "totalPages": 2}
    assert len(second["data"]) == 5


def test_a_page_or_limit_out_of_range_is_a_422_that_says_so(app, client, auth):
    path_id = _new_path(app)
    build_id = _build_with_steps(app, path_id, 3)

    for url in (
        f"/api/jobs/{build_id}/steps?limit=101",
        f"/api/jobs/{build_id}/steps?page=0",
        f"/api/jobs/path/{path_id}?limit=1000",
        f"/api/jobs/path/{path_id}?page=x",
    ):
        response = client.get(url, headers=auth)
        assert response.status_code == 422, url
        assert response.get_json()["error"]["code"] == "validation_error", url


# --- the workflow page polls only what changes ------------------------------------------------

HX = {"HX-Request": "true"}


def _workflow_in_progress(app: Flask, completed: int, email: str = OWNER) -> str:
    """A workflow whose first `completed` modules are done (three lesson plans each), the next
    one running, and one more queued."""
    with app.app_context():
        statuses = ["completed"] * completed + ["running", "queued"]
        workflow = Workflow(
            owner_id=_owner_id(email),
            title="Polled",
            topic="t",
            modules=[
                Module(position=p, title=f"Module {p}", contact_hours=1, status=status)
                for p, status in enumerate(statuses)
            ],
        )
        db.session.add(workflow)
        db.session.flush()
        for module in workflow.modules[:completed]:
            _add_plans(module)
        db.session.commit()
        return workflow.id


def _add_plans(module: Module) -> None:
    db.session.add_all(
        LessonPlan(
            module_id=module.id,
            order=i,
            title=f"Plan {module.position}.{i}",
            objectives=["o"],
            activities=[{"name": "a", "kind": "k", "duration_minutes": 5}],
            assessment="x",
            duration_minutes=45,
        )
        for i in range(3)
    )


def _complete_module(app: Flask, workflow_id: str, position: int) -> None:
    with app.app_context():
        module = db.session.scalar(
            select(Module).where(Module.workflow_id == workflow_id, Module.position == position)
        )
        module.status = "completed"
        _add_plans(module)
        db.session.commit()


def _poll(client: FlaskClient, workflow_id: str, shown: str) -> str:
    response = client.get(f"/workflows/{workflow_id}", query_string={"shown": shown}, headers=HX)
    assert response.status_code == 200
    return response.get_data(as_text=True)


def test_a_poll_renders_no_lesson_plan_the_page_already_shows(app, client):
    sign_in(app, client, OWNER)
    workflow_id = _workflow_in_progress(app, completed=5)
    page = client.get(f"/workflows/{workflow_id}").get_data(as_text=True)
    assert page.count("Plan ") == 15, "the page itself shows every plan"
    assert "&#34;shown&#34;: &#34;0,1,2,3,4&#34;" in page or '"shown": "0,1,2,3,4"' in page

    body = _poll(client, workflow_id, "0,1,2,3,4")

    assert 'hx-trigger="every' in body and "Plan " not in body and "hx-swap-oob" not in body


def test_a_poll_brings_only_the_plans_of_a_module_completed_since(app, client):
    sign_in(app, client, OWNER)
    workflow_id = _workflow_in_progress(app, completed=5)
    _complete_module(app, workflow_id, 5)

    body = _poll(client, workflow_id, "0,1,2,3,4")

    assert body.count("Plan ") == 3 and "Plan 5.0" in body
    assert '<div id="lessons-5" class="module-lessons" hx-swap-oob="true">' in body
    assert "0,1,2,3,4,5" in body, "the next poll says it shows module 5 too"


def test_a_poll_costs_the_same_queries_with_1_or_20_modules_shown(app, client):
    sign_in(app, client, OWNER)
    few = _workflow_in_progress(app, completed=1)
    many = _workflow_in_progress(app, completed=20)
    _poll(client, few, "0")

    with QueryCounter(app) as small:
        _poll(client, few, "0")
    with QueryCounter(app) as large:
        _poll(client, many, ",".join(str(p) for p in range(20)))

    assert small.count == large.count


def test_a_poll_with_a_nonsense_shown_list_still_answers(app, client):
    sign_in(app, client, OWNER)
    workflow_id = _workflow_in_progress(app, completed=2)

    for shown in ("²,x,-1", "9" * 5000, "99999999999999999999999,0", ""):
        assert "hx-trigger" in _poll(client, workflow_id, shown)
