"""Bad input gets a clear 4xx and changes nothing: deep JSON, numbers past 64 bits, digits that
are not ASCII, NUL and lone surrogates — the same answer on SQLite and PostgreSQL."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from app.extensions import db
from app.inputs import MAX_ID, bounded_int
from app.models import LearningPath, Workflow
from tests.helpers import create_path, create_workflow, start_build
from tests.helpers.web import post_form, sign_in

DEEP_JSON = "[" * 50_000 + "]" * 50_000  # 100 KB, under MAX_CONTENT_LENGTH
PAST_64_BITS = str(MAX_ID + 1)


def _counts(app: Flask) -> tuple[int, int]:
    with app.app_context():
        return (
            db.session.scalar(select(func.count(Workflow.id))),
            db.session.scalar(select(func.count(LearningPath.id))),
        )


def _assert_json_error(response, status: int, code: str) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.get_data(as_text=True)[:300]
    body = response.get_json()
    assert body["success"] is False and body["error"]["code"] == code, body


def test_deeply_nested_json_is_a_400_on_every_json_route(client: FlaskClient, auth: dict[str, str]) -> None:
    path_id = create_path(client, auth)
    workflow_id = create_workflow(client, auth)
    routes = [
        "/api/v3/workflows",
        "/api/learning-paths",
        f"/api/jobs/build/{path_id}",
        f"/api/v3/workflow/{workflow_id}/step10",
    ]
    for route in routes:
        response = client.post(route, data=DEEP_JSON, headers={**auth, "Content-Type": "application/json"})
        _assert_json_error(response, 400, "invalid_json")


def test_an_id_past_64_bits_in_the_path_is_a_404_not_a_500(client: FlaskClient, auth: dict[str, str]) -> None:
    response = client.post(f"/api/dead-letter/{PAST_64_BITS}/retry", headers=auth)
    _assert_json_error(response, 404, "not_found")


def test_a_last_event_id_past_64_bits_is_a_400(client: FlaskClient, auth: dict[str, str]) -> None:
    build_id = start_build(client, auth, create_path(client, auth))
    response = client.get(f"/api/jobs/{build_id}/stream", headers={**auth, "Last-Event-ID": PAST_64_BITS})
    _assert_json_error(response, 400, "invalid_last_event_id")


def test_a_superscript_digit_as_last_event_id_is_a_400(client: FlaskClient, auth: dict[str, str]) -> None:
    build_id = start_build(client, auth, create_path(client, auth))
    response = client.get(f"/api/jobs/{build_id}/stream?lastEventId=²", headers=auth)
    _assert_json_error(response, 400, "invalid_last_event_id")


def test_a_query_limit_in_other_digits_is_a_422(client: FlaskClient, auth: dict[str, str]) -> None:
    for limit in ("²", "٣", "1_0", " 5"):  # int() takes all but the first
        _assert_json_error(client.get(f"/api/jobs?limit={limit}", headers=auth), 422, "validation_error")


def test_an_admin_page_number_past_64_bits_shows_the_last_page(app: Flask, client: FlaskClient) -> None:
    sign_in(app, client, "root@example.com", admin=True)
    response = client.get("/admin/?page=4611686018427387904")
    assert response.status_code == 200
    assert "Page 1 of 1" in response.get_data(as_text=True)


def test_nul_in_json_text_is_a_422_and_writes_nothing(
    app: Flask, client: FlaskClient, auth: dict[str, str]
) -> None:
    before = _counts(app)
    response = client.post("/api/learning-paths", json={"name": "Stats\x00", "topic": "x"}, headers=auth)
    _assert_json_error(response, 422, "validation_error")
    response = client.post(
        "/api/v3/workflows",
        json={"title": "t", "topic": "t", "modules": [{"title": "a\x00b"}]},
        headers=auth,
    )
    _assert_json_error(response, 422, "validation_error")
    assert _counts(app) == before


def test_a_lone_surrogate_in_json_text_is_a_422_and_writes_nothing(
    app: Flask, client: FlaskClient, auth: dict[str, str]
) -> None:
    before = _counts(app)
    body = '{"name": "Stats \\ud800", "topic": "statistics"}'
    response = client.post(
        "/api/learning-paths", data=body, headers={**auth, "Content-Type": "application/json"}
    )
    _assert_json_error(response, 422, "validation_error")
    assert _counts(app) == before


def test_nul_in_a_path_id_is_a_422(client: FlaskClient, auth: dict[str, str]) -> None:
    _assert_json_error(client.get("/api/jobs/abc%00def", headers=auth), 422, "validation_error")
    _assert_json_error(client.get("/api/learning-paths/%00", headers=auth), 422, "validation_error")


def test_nul_in_a_query_string_is_a_422(app: Flask, client: FlaskClient) -> None:
    sign_in(app, client, "root@example.com", admin=True)
    response = client.get("/admin/?q=%00")
    assert response.status_code == 422
    assert "NUL" in response.get_data(as_text=True)


def test_nul_in_a_page_form_is_a_422_and_writes_nothing(app: Flask, client: FlaskClient) -> None:
    sign_in(app, client, "designer@example.com")
    before = _counts(app)
    response = post_form(client, "/paths", {"path-name": "Stats\x00", "path-topic": "statistics"})
    assert response.status_code == 422
    assert "NUL" in response.get_data(as_text=True)
    assert _counts(app) == before


def test_nul_in_the_sign_in_email_is_a_422(app: Flask, client: FlaskClient) -> None:
    response = post_form(client, "/sign-in", {"email": "a\x00@example.com", "password": "x"}, page="/sign-in")
    assert response.status_code == 422


def test_a_page_form_posted_as_json_that_is_not_flat_text_is_a_400(app: Flask, client: FlaskClient) -> None:
    sign_in(app, client, "designer@example.com")
    app.config["WTF_CSRF_ENABLED"] = False  # else CSRF refuses it first; a JSON client may send its token
    before = _counts(app)
    assert client.post("/sign-in", json=False).status_code == 400
    for body in ([1], {"path-name": {"a": 1}, "path-topic": "t"}, {"path-name": ["x", 2]}):
        assert client.post("/paths", json=body).status_code == 400, body
    assert _counts(app) == before


def test_bounded_int_takes_only_ascii_digits_within_64_bits() -> None:
    assert bounded_int("42") == 42
    assert bounded_int(str(MAX_ID)) == MAX_ID
    for bad in (None, "", "-1", "+1", " 1", "1_000", "²", "٣", "1e3", PAST_64_BITS, "9" * 40):
        assert bounded_int(bad) is None, bad
    assert bounded_int("5", low=1, high=4) is None


def test_builds_still_list_after_the_guards(client: FlaskClient, auth: dict[str, str]) -> None:
    start_build(client, auth, create_path(client, auth))
    response = client.get("/api/jobs?limit=5", headers=auth)
    assert response.status_code == 200 and len(response.get_json()) == 1
