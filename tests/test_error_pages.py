"""Errors a person meets are styled pages inside the layout, with a way on and a plain sentence;
the API (and anything asking for JSON) keeps its JSON errors. Outages of Redis and of the
database show a 503 page, never JSON or bare text."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from app.errors import PAGE_WORDS
from tests.helpers.apps import boom_app
from tests.helpers.web import csrf_token, sign_in

LAYOUT = '<header class="top">'


def _assert_error_page(response, status: int) -> str:  # type: ignore[no-untyped-def]
    page = response.get_data(as_text=True)
    assert response.status_code == status, page[:300]
    assert response.mimetype == "text/html"
    assert LAYOUT in page and 'href="/static/app.css"' in page, "inside the layout"
    assert f"Error {status}" in page and PAGE_WORDS[status][0] in page
    assert 'href="/">Go to your home page</a>' in page
    return page


def test_a_missing_page_is_a_styled_404_for_anyone(app, client):
    _assert_error_page(client.get("/no-such-page"), 404)
    sign_in(app, client, "ada@example.com")
    page = _assert_error_page(client.get("/paths/not-a-path"), 404)
    assert "Sign out ada@example.com" in page, "the navigation of a signed-in person"


def test_an_anonymous_404_offers_sign_in_in_the_header(client):
    page = _assert_error_page(client.get("/no-such-page"), 404)
    assert 'href="/sign-in">Sign in</a>' in page


def test_a_non_admin_gets_a_styled_403(app, client):
    sign_in(app, client, "ada@example.com")
    _assert_error_page(client.get("/admin/"), 403)
    _assert_error_page(client.get("/admin/rq/"), 403)


def test_a_post_without_csrf_token_is_a_styled_400(app, client):
    sign_in(app, client, "ada@example.com")
    _assert_error_page(client.post("/workflows", data={"workflow-title": "x"}), 400)


def test_a_wrong_method_is_a_styled_405(client):
    _assert_error_page(client.get("/workflows"), 405)


def test_a_too_large_form_is_a_styled_413_that_says_the_limit(app, client):
    sign_in(app, client, "ada@example.com")
    response = client.post("/workflows", data={"workflow-modules": "x" * (300 * 1024)})
    page = _assert_error_page(response, 413)
    assert "256 KB" in page


def test_a_bug_is_a_styled_500_and_the_api_keeps_json(service_env, app):
    client = boom_app().test_client()
    _assert_error_page(client.get("/boom"), 500)

    api = client.get("/boom", headers={"Accept": "application/json"})
    assert api.status_code == 500 and api.get_json()["success"] is False


def test_a_redis_outage_on_a_page_is_a_styled_503(app, client, redis_server):
    sign_in(app, client, "root@example.com", admin=True)
    redis_server.stop()
    try:
        page = _assert_error_page(client.get("/admin/rq/"), 503)
    finally:
        redis_server.start()
    assert "job queue" in page and "stays saved" in page


def test_a_database_outage_on_a_page_is_a_styled_503(app, client, tmp_path):
    sign_in(app, client, "ada@example.com")
    broken = boom_app(SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path}/missing-dir/app.db").test_client()
    broken.set_cookie("session", client.get_cookie("session").value)

    page = _assert_error_page(broken.get("/"), 503)

    assert "database is not answering" in page
    assert "Sign out" not in page, "nobody can be named while the database is away"


def test_a_database_outage_while_signing_in_is_a_styled_503(service_env, tmp_path):
    broken = boom_app(SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path}/missing-dir/app.db").test_client()
    response = broken.post(
        "/sign-in", data={"email": "ada@example.com", "password": "x", "csrf_token": csrf_token(broken)}
    )
    _assert_error_page(response, 503)


@pytest.mark.parametrize(
    ("url", "status", "code"),
    [
        ("/api/v3/workflow/nope/step10/status", 404, None),
        ("/api/nothing-here", 404, "not_found"),
    ],
)
def test_api_errors_stay_json(app, client: FlaskClient, auth, url, status, code):
    response = client.get(url, headers=auth)
    assert response.status_code == status and response.mimetype == "application/json"
    body = response.get_json()
    assert body["success"] is False and (code is None or body["error"]["code"] == code)


def test_an_api_call_during_a_redis_outage_stays_json(app, client, auth, redis_server):
    workflow = client.post(
        "/api/v3/workflows",
        json={"title": "T", "topic": "t", "modules": [{"title": "M", "contactHours": 1}]},
        headers=auth,
    ).get_json()["data"]["id"]
    redis_server.stop()
    try:
        response = client.post(f"/api/v3/workflow/{workflow}/step10", headers=auth)
    finally:
        redis_server.start()
    assert response.status_code == 503 and response.get_json()["error"]["code"] == "queue_unavailable"


def test_rq_dashboards_data_routes_get_json_errors_for_its_scripts(app, client):
    sign_in(app, client, "ada@example.com")
    response = client.get("/admin/rq/0/data/queues.json")
    assert response.status_code == 403 and response.get_json()["success"] is False


def test_an_api_wrong_method_stays_json(app, client, auth):
    response = client.delete("/api/learning-paths", headers=auth)
    assert response.status_code == 405 and response.get_json()["error"]["code"] == "method_not_allowed"


def test_a_405_page_and_its_json_keep_the_allow_header(app, client, auth):
    page = client.get("/sign-out")
    api = client.delete("/api/v3/workflows", headers=auth)

    assert page.status_code == 405 and "POST" in page.headers["Allow"]
    assert "<html" in page.get_data(as_text=True)
    assert api.status_code == 405 and "GET" in api.headers["Allow"] and api.is_json


def test_a_missing_dead_letter_is_said_plainly_on_the_styled_page(app, client):
    sign_in(app, client, "root@example.com", admin=True)

    response = client.post(
        "/admin/dead-letters/424242/retry", data={"csrf_token": csrf_token(client, "/admin/dead-letters")}
    )

    page = response.get_data(as_text=True)
    assert response.status_code == 404 and response.mimetype == "text/html"
    assert LAYOUT in page and "Error 404" in page and "No such dead letter" in page
    assert "There is no dead letter 424242: it was removed with its build" in page


def test_a_missing_dead_letter_is_said_plainly_in_the_api_json(app, client, auth):
    response = client.post("/api/dead-letter/424242/retry", headers=auth)

    assert response.status_code == 404
    assert response.get_json()["error"] == {
        "code": "not_found",
        "message": "There is no dead letter 424242: it was removed with its build, "
        "or it is not yours to see. The dead-letter list shows those that remain.",
    }
