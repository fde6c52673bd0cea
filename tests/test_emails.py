"""The one email rule, and the CLI and the sign-in form agreeing on it."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.emails import InvalidEmail, normalize_email
from app.extensions import db
from app.models import User
from tests.helpers.web import csrf_token


@pytest.mark.parametrize(
    ("text", "stored"),
    [
        ("admin@localhost", "admin@localhost"),
        ("  Admin@LocalHost ", "admin@localhost"),
        ("Ada@Example.COM", "ada@example.com"),
        ("\tada.lovelace+notes@example.org\n", "ada.lovelace+notes@example.org"),
    ],
)
def test_an_address_is_stored_trimmed_and_lower_case(text, stored):
    assert normalize_email(text) == stored


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "@-sign"),
        ("ada", "@-sign"),
        ("@localhost", "something before the @-sign"),
        ("ada lovelace@localhost", "invalid characters"),
        ("ada@@example.com", "invalid characters"),
        ("ada@example..com", "two periods"),
        ("ada@example", "not valid"),  # a bare name other than localhost is not a domain
        ("ada@mail.test", "special-use"),
        ("Ada <ada@example.com>", "display name"),
    ],
)
def test_what_is_not_an_address_is_refused_with_its_reason(text, reason):
    with pytest.raises(InvalidEmail, match=reason):
        normalize_email(text)


def test_the_cli_stores_an_address_as_the_rule_says(app):
    result = app.test_cli_runner().invoke(args=["users", "create", " Admin@LocalHost ", "--password", "pw"])

    assert result.exit_code == 0, result.output
    with app.app_context():
        assert db.session.scalars(select(User.email)).all() == ["admin@localhost"]


def test_the_cli_refuses_what_is_not_an_address_and_creates_nothing(app):
    result = app.test_cli_runner().invoke(args=["users", "create", "ada@@example.com", "--password", "pw"])

    assert result.exit_code == 2 and "Invalid value for EMAIL" in result.output
    with app.app_context():
        assert db.session.scalar(select(func.count(User.id))) == 0


def test_a_user_created_on_localhost_signs_in_through_the_form(app, client):
    app.test_cli_runner().invoke(args=["users", "create", "admin@localhost", "--password", "pw", "--admin"])

    response = client.post(
        "/sign-in", data={"email": " Admin@localhost", "password": "pw", "csrf_token": csrf_token(client)}
    )

    assert response.status_code == 302 and response.headers["Location"] == "/"
    assert client.get("/").status_code == 200


def test_the_form_says_why_an_address_is_refused_beside_the_field(app, client):
    response = client.post(
        "/sign-in", data={"email": "ada@", "password": "pw", "csrf_token": csrf_token(client)}
    )

    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert 'id="email-error"' in page and "There must be something after the @-sign." in page
