"""Sign-in sessions end for good: at sign-out, everywhere on demand, on a password change, and
after SESSION_MAX_AGE_S whatever the cookie says."""

from __future__ import annotations

from datetime import timedelta

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update

from app.database import utcnow
from app.extensions import db
from app.models import User, UserSession
from tests.helpers.web import PASSWORD, csrf_token, post_form, sign_in


def _signed_in(client: FlaskClient) -> bool:
    return client.get("/").status_code == 200


def _second_client_signed_in_as(app: Flask, email: str) -> FlaskClient:
    other = app.test_client()
    response = other.post(
        "/sign-in", data={"email": email, "password": PASSWORD, "csrf_token": csrf_token(other)}
    )
    assert response.status_code == 302
    return other


def test_a_saved_cookie_is_refused_after_sign_out(app, client):
    sign_in(app, client, "ada@example.com")
    saved = client.get_cookie("session").value

    client.post("/sign-out", data={"csrf_token": csrf_token(client, "/")})
    client.set_cookie("session", saved)

    assert not _signed_in(client)


def test_signing_out_in_one_browser_leaves_the_other_signed_in(app, client):
    sign_in(app, client, "ada@example.com")
    other = _second_client_signed_in_as(app, "ada@example.com")

    client.post("/sign-out", data={"csrf_token": csrf_token(client, "/")})

    assert _signed_in(other) and not _signed_in(client)


def test_the_session_cookie_carries_the_maximum_age(app, client):
    sign_in(app, client, "ada@example.com")

    cookie = client.get_cookie("session")

    assert cookie.expires is not None
    lifetime = cookie.expires.replace(tzinfo=None) - utcnow()
    assert timedelta(days=13, hours=23) < lifetime <= timedelta(days=14)


def test_a_session_older_than_the_maximum_age_is_refused_whatever_the_cookie_says(app, client):
    sign_in(app, client, "ada@example.com")
    with app.app_context():
        db.session.execute(update(UserSession).values(created_at=utcnow() - timedelta(days=14, seconds=1)))
        db.session.commit()

    assert not _signed_in(client)


def test_sign_out_everywhere_ends_every_session_of_the_user_only(app, client):
    sign_in(app, client, "ada@example.com")
    other = _second_client_signed_in_as(app, "ada@example.com")
    bob = app.test_client()
    sign_in(app, bob, "bob@example.com")
    saved = other.get_cookie("session").value

    response = post_form(client, "/sign-out-everywhere", {}, page="/account")
    other.set_cookie("session", saved)

    assert response.status_code == 302
    assert not _signed_in(client) and not _signed_in(other)
    assert _signed_in(bob)


def test_sign_out_everywhere_needs_a_csrf_token(app, client):
    sign_in(app, client, "ada@example.com")

    response = client.post("/sign-out-everywhere")

    assert response.status_code == 400 and _signed_in(client)


def test_the_account_page_offers_sign_out_everywhere(app, client):
    sign_in(app, client, "ada@example.com")

    page = client.get("/account").get_data(as_text=True)

    assert 'action="/sign-out-everywhere"' in page and "Sign out everywhere" in page


def test_changing_the_password_on_the_page_ends_other_sessions_but_keeps_this_one(app, client):
    sign_in(app, client, "ada@example.com")
    other = _second_client_signed_in_as(app, "ada@example.com")

    response = post_form(
        client,
        "/account/password",
        {
            "current_password": PASSWORD,
            "new_password": "a whole new passphrase",
            "confirm": "a whole new passphrase",
        },
        page="/account",
    )

    assert response.status_code == 302
    assert _signed_in(client) and not _signed_in(other)
    with app.app_context():
        assert db.session.scalar(select(User)).check_password("a whole new passphrase")


def test_a_password_change_with_the_wrong_current_password_changes_nothing(app, client):
    sign_in(app, client, "ada@example.com")
    other = _second_client_signed_in_as(app, "ada@example.com")

    response = post_form(
        client,
        "/account/password",
        {
            "current_password": "wrong",
            "new_password": "a whole new passphrase",
            "confirm": "a whole new passphrase",
        },
        page="/account",
    )

    assert response.status_code == 422
    assert 'id="current_password-error"' in response.get_data(as_text=True)
    assert _signed_in(other)
    with app.app_context():
        assert db.session.scalar(select(User)).check_password(PASSWORD)


def test_a_short_or_mismatched_new_password_is_refused_beside_the_field(app, client):
    sign_in(app, client, "ada@example.com")

    short = post_form(
        client,
        "/account/password",
        {"current_password": PASSWORD, "new_password": "short", "confirm": "short"},
        page="/account",
    )
    mismatched = post_form(
        client,
        "/account/password",
        {"current_password": PASSWORD, "new_password": "long enough one", "confirm": "long enough two"},
        page="/account",
    )

    assert short.status_code == 422 and 'id="new_password-error"' in short.get_data(as_text=True)
    assert mismatched.status_code == 422 and 'id="confirm-error"' in mismatched.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(User)).check_password(PASSWORD)


def test_the_cli_password_change_ends_every_session(app, client):
    sign_in(app, client, "ada@example.com")

    result = app.test_cli_runner().invoke(
        args=["users", "password", "ada@example.com", "--password", "a whole new passphrase"]
    )

    assert result.exit_code == 0, result.output
    assert "signed out of 1 session" in result.output
    assert not _signed_in(client)
    with app.app_context():
        assert db.session.scalar(select(User)).check_password("a whole new passphrase")


def test_a_session_id_is_stored_only_as_a_hash(app, client):
    sign_in(app, client, "ada@example.com")
    with client.session_transaction() as session:
        secret = session["sid"]

    with app.app_context():
        stored = db.session.scalar(select(UserSession.id))
    assert stored and secret not in stored


def test_the_cli_signs_a_user_out_everywhere(app, client):
    sign_in(app, client, "ada@example.com")

    result = app.test_cli_runner().invoke(args=["users", "sign-out", "ada@example.com"])

    assert result.exit_code == 0 and "signed ada@example.com out of 1 session(s)" in result.output
    assert not _signed_in(client)


def test_wrong_current_passwords_on_the_account_page_are_throttled_like_sign_ins(app, client):
    app.config["SIGNIN_FAILURE_LIMIT_PER_ACCOUNT"] = "3 per minute"
    sign_in(app, client, "ada@example.com")
    wrong = {
        "current_password": "guess",
        "new_password": "a whole new passphrase",
        "confirm": "a whole new passphrase",
    }
    for _ in range(3):
        assert post_form(client, "/account/password", wrong, page="/account").status_code == 422

    right = post_form(client, "/account/password", {**wrong, "current_password": PASSWORD}, page="/account")

    assert right.status_code == 429 and "Retry-After" in right.headers
    assert 'id="current_password-error"' in right.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(User)).check_password(PASSWORD)


def test_a_session_naming_an_odd_user_id_is_simply_signed_out(app, client):
    sign_in(app, client, "ada@example.com")
    for odd in ("²", "99999999999999999999", "-1", ""):
        with client.session_transaction() as session:
            session["_user_id"] = odd

        assert client.get("/").status_code == 302, odd
