"""Live regions: a poll costs the same number of queries however big the build, polling stops
by itself at a final state, and the admin table stays constant with 100,000 builds."""

from __future__ import annotations

import pytest
from sqlalchemy import insert, select

from app.database import utcnow
from app.extensions import db
from app.models import (
    Build,
    LearningPath,
    LessonPlanRun,
    User,
    Workflow,
)
from tests.helpers.builds import path_with_build
from tests.helpers.queries import QueryCounter
from tests.helpers.web import post_form, sign_in

HX = {"HX-Request": "true"}


def _poll(app, client, path_id) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    with QueryCounter(app) as counter:
        response = client.get(f"/paths/{path_id}", headers=HX)
    assert response.status_code == 200
    return counter.count, response.get_data(as_text=True)


def test_a_poll_costs_the_same_queries_for_10_and_5000_steps(app, client):
    sign_in(app, client, "ada@example.com")
    small, large = path_with_build(app, 10), path_with_build(app, 5000)
    _poll(app, client, small)  # warm up: the first request of a session loads the user

    small_queries, small_body = _poll(app, client, small)
    large_queries, large_body = _poll(app, client, large)

    assert small_queries == large_queries
    assert 'hx-trigger="every' in small_body and 'hx-trigger="every' in large_body
    assert large_body.count('class="event-') == 20, "the activity log shows the last 20 events"


def test_polling_stops_once_the_build_is_final(app, client):
    sign_in(app, client, "ada@example.com")
    path_id = path_with_build(app, 10, status="completed")

    _, body = _poll(app, client, path_id)

    assert 'hx-trigger="every' not in body
    assert 'hx-get="/paths/' in body and 'hx-trigger="load"' in body, "the tree is fetched once"


def test_a_button_that_changes_the_state_starts_polling_again(app, client):
    sign_in(app, client, "ada@example.com")
    path_id = path_with_build(app, 10, status="failed")
    with app.app_context():
        build_id = db.session.scalar(select(Build.id).where(Build.path_id == path_id))
    assert 'hx-trigger="every' not in _poll(app, client, path_id)[1]

    response = post_form(client, f"/builds/{build_id}/retry", {}, page=f"/paths/{path_id}", headers=HX)

    assert response.status_code == 200 and 'hx-trigger="every' in response.get_data(as_text=True)


def test_the_workflow_region_polls_while_generating_and_stops_when_done(app, client):
    sign_in(app, client, "ada@example.com")
    response = post_form(
        client, "/workflows", {"workflow-title": "W", "workflow-topic": "t", "workflow-modules": "A\nB"}
    )
    url = response.headers["Location"]
    assert 'hx-trigger="every' not in client.get(url, headers=HX).get_data(as_text=True)

    started = post_form(client, url + "/generate", {}, page=url, headers=HX)

    assert 'hx-trigger="every' in started.get_data(as_text=True)
    assert "Generating module 1 of 2" in started.get_data(as_text=True)


def _bulk_builds(app, count: int, prefix: str) -> None:  # type: ignore[no-untyped-def]
    with app.app_context():
        owner = db.session.scalar(select(User.id))
        path = LearningPath(owner_id=owner, name="Big history", topic="stats")
        workflow = Workflow(owner_id=owner, title="Big workflow", topic="t")
        db.session.add_all([path, workflow])
        db.session.flush()
        now = utcnow()
        for start in range(0, count, 20_000):
            db.session.execute(
                insert(Build),
                [
                    {
                        "id": f"{prefix}b{i:030d}",
                        "path_id": path.id,
                        "status": "completed" if i % 7 else "failed",
                        "created_at": now,
                        "updated_at": now,
                        "completed_at": now,
                        "triggered_by": owner,
                        "error": None if i % 7 else f"boom {i}",
                    }
                    for i in range(start, min(count, start + 20_000))
                ],
            )
        db.session.execute(
            insert(LessonPlanRun),
            [
                {
                    "id": f"{prefix}r{i:030d}",
                    "workflow_id": workflow.id,
                    "status": "complete",
                    "created_at": now,
                }
                for i in range(20)
            ],
        )
        db.session.commit()


def _admin_queries(app, client, query: str = "") -> int:  # type: ignore[no-untyped-def]
    with QueryCounter(app) as counter:
        response = client.get(f"/admin/jobs{query}")
    assert response.status_code == 200
    return counter.count


@pytest.mark.slow
def test_the_admin_table_answers_in_constant_queries_with_100000_builds(app, client):
    sign_in(app, client, "root@example.com", admin=True)
    _bulk_builds(app, 10, "a")
    _admin_queries(app, client)
    few = _admin_queries(app, client)
    few_filtered = _admin_queries(app, client, "?status=failed&q=boom&page=1")

    _bulk_builds(app, 100_000, "b")
    many = _admin_queries(app, client)
    many_filtered = _admin_queries(app, client, "?status=failed&q=boom&page=3")

    assert few == many and few_filtered == many_filtered
    page = client.get("/admin/jobs?status=failed&q=boom%2099995").get_data(as_text=True)
    assert "boom 99995" in page and "1 in all" in page
