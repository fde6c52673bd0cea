"""The pages through Flask's test client: sign-in, ownership, forms, fragments, CSRF."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import LearningPath, Workflow
from tests.helpers.web import csrf_token, post_form, sign_in


def test_an_anonymous_visitor_is_sent_to_sign_in(client):
    for url in ("/", "/workflows/x", "/paths/x", "/admin/", "/admin/rq/"):
        response = client.get(url)
        assert response.status_code == 302 and "/sign-in" in response.headers["Location"], url


def test_a_wrong_password_is_refused_beside_the_field(app, client):
    sign_in(app, client, "ada@example.com")
    client.post("/sign-out", data={"csrf_token": csrf_token(client, "/")})

    response = client.post(
        "/sign-in", data={"email": "ada@example.com", "password": "nope", "csrf_token": csrf_token(client)}
    )

    assert response.status_code == 422
    assert 'id="password-error"' in response.get_data(as_text=True)
    assert client.get("/").status_code == 302


def test_sign_in_does_not_redirect_off_site(app, client):
    from tests.helpers.users import make_user
    from tests.helpers.web import PASSWORD

    make_user(app, "ada@example.com")
    response = client.post(
        "/sign-in?next=//evil.example/",
        data={"email": "ada@example.com", "password": PASSWORD, "csrf_token": csrf_token(client)},
    )

    assert response.headers["Location"] == "/"


def _count(app, model) -> int:  # type: ignore[no-untyped-def]
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model))


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        (
            {"workflow-title": "", "workflow-topic": "t", "workflow-modules": "A"},
            "workflow-title",
            "required",
        ),
        (
            {"workflow-title": "T", "workflow-topic": "t", "workflow-modules": ""},
            "workflow-modules",
            "required",
        ),
        (
            {"workflow-title": "T", "workflow-topic": "t", "workflow-modules": "A | lots"},
            "workflow-modules",
            "not a number",
        ),
        (
            {"workflow-title": "T", "workflow-topic": "t", "workflow-modules": "A | 0"},
            "workflow-modules",
            "between 0.25 and 200",
        ),
        (
            {"workflow-title": "T", "workflow-topic": "t", "workflow-modules": "\n".join("m" * 51)},
            "workflow-modules",
            "between 1 and 50",
        ),
    ],
)
def test_an_invalid_workflow_form_shows_the_error_beside_its_field_and_saves_nothing(
    app, client, data, field, message
):
    sign_in(app, client, "ada@example.com")

    response = post_form(client, "/workflows", data)

    assert response.status_code == 422
    page = response.get_data(as_text=True)
    error_start = page.index(f'id="{field}-error"')
    assert message in page[error_start : error_start + 200]
    assert _count(app, Workflow) == 0


def test_an_invalid_path_form_shows_the_error_beside_its_field(app, client):
    sign_in(app, client, "ada@example.com")

    response = post_form(
        client, "/paths", {"path-name": "", "path-topic": "stats", "path-concept_count": "0"}
    )

    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert 'id="path-name-error"' in page and 'id="path-concept_count-error"' in page
    assert _count(app, LearningPath) == 0


def test_a_valid_form_creates_and_shows_the_workflow(app, client):
    sign_in(app, client, "ada@example.com")

    response = post_form(
        client,
        "/workflows",
        {
            "workflow-title": "Data literacy",
            "workflow-topic": "data",
            "workflow-modules": "Charts | 2\nTables",
        },
    )

    assert response.status_code == 302
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Data literacy" in page and "Charts" in page and "Generate lesson plans" in page
    with app.app_context():
        workflow = db.session.scalar(select(Workflow))
        assert [(m.title, m.contact_hours) for m in workflow.modules] == [("Charts", 2.0), ("Tables", 3.0)]


def test_another_users_pages_are_404s(app, client):
    sign_in(app, client, "ada@example.com")
    post_form(client, "/paths", {"path-name": "Mine", "path-topic": "stats"})
    post_form(client, "/workflows", {"workflow-title": "W", "workflow-topic": "t", "workflow-modules": "A"})
    with app.app_context():
        path_id, workflow_id = (
            db.session.scalar(select(LearningPath.id)),
            db.session.scalar(select(Workflow.id)),
        )
    client.post("/sign-out", data={"csrf_token": csrf_token(client, "/")})
    sign_in(app, client, "bob@example.com")

    assert client.get(f"/paths/{path_id}").status_code == 404
    assert client.get(f"/workflows/{workflow_id}").status_code == 404
    assert post_form(client, f"/paths/{path_id}/build", {}).status_code == 404
    assert "Mine" not in client.get("/").get_data(as_text=True)


def test_a_non_admin_is_refused_every_admin_page_and_rq_dashboard(app, client):
    sign_in(app, client, "ada@example.com")

    for url in (
        "/admin/",
        "/admin/workers",
        "/admin/dead-letters",
        "/admin/builds/x",
        "/admin/rq/",
        "/admin/rq/0/data/queues.json",
    ):
        assert client.get(url).status_code == 403, url


def test_an_admin_sees_the_admin_pages_and_rq_dashboard(app, client):
    sign_in(app, client, "root@example.com", admin=True)

    for url in (
        "/admin/",
        "/admin/workers",
        "/admin/dead-letters",
        "/admin/rq/",
        "/admin/rq/0/data/queues.json",
    ):
        assert client.get(url).status_code == 200, url


def _post_routes(app) -> list[str]:  # type: ignore[no-untyped-def]
    urls = []
    for rule in app.url_map.iter_rules():
        if "POST" not in rule.methods or rule.rule.startswith(("/api/", "/admin/rq")):
            continue
        urls.append(
            rule.rule.replace("<build_id>", "b")
            .replace("<action>", "cancel")
            .replace("<path_id>", "p")
            .replace("<workflow_id>", "w")
            .replace("<int:letter_id>", "1")
        )
    return urls


def test_every_form_post_without_a_valid_csrf_token_is_refused(app, client):
    sign_in(app, client, "root@example.com", admin=True)
    routes = _post_routes(app)
    assert len(routes) >= 8

    for url in routes:
        missing = client.post(url, data={})
        forged = client.post(url, data={"csrf_token": "forged"})
        assert missing.status_code == 400 and forged.status_code == 400, url
    assert client.get("/").status_code == 200, "still signed in: sign-out was refused too"


def test_rq_dashboard_posts_must_come_from_this_site(app, client):
    sign_in(app, client, "root@example.com", admin=True)

    url = "/admin/rq/queue/lesson-plans/queued/empty"
    cross = client.post(url, headers={"Origin": "https://evil.example"})
    unsaid = client.post(url)
    same = client.post(url, headers={"Origin": "http://localhost"})

    assert (cross.status_code, unsaid.status_code, same.status_code) == (403, 403, 200)


def test_rq_dashboard_shows_a_job_with_dependencies(app, client, redis_server):
    from rq import Queue

    sign_in(app, client, "root@example.com", admin=True)
    queue = Queue("lesson-plans", connection=redis_server.client())
    parent = queue.enqueue("builtins.print", "parent")
    child = queue.enqueue("builtins.print", "child", depends_on=parent)

    data = client.get(f"/admin/rq/0/data/job/{child.id}.json")
    page = client.get(f"/admin/rq/0/view/job/{child.id}")

    assert data.status_code == 200 and data.get_json()["depends_on"] == [parent.id]
    assert page.status_code == 200
