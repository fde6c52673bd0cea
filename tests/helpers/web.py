"""Signing in and posting forms through Flask's test client, CSRF token included."""

from __future__ import annotations

import re

from flask import Flask
from flask.testing import FlaskClient

from tests.helpers.users import PASSWORD, make_user


def csrf_token(client: FlaskClient, url: str = "/sign-in") -> str:
    page = client.get(url).get_data(as_text=True)
    match = re.search(r'name="[\w-]*csrf_token"[^>]*value="([^"]+)"', page)
    assert match, f"no CSRF token on {url}"
    return match.group(1)


def sign_in(app: Flask, client: FlaskClient, email: str, admin: bool = False) -> None:
    make_user(app, email, admin=admin)
    response = client.post(
        "/sign-in", data={"email": email, "password": PASSWORD, "csrf_token": csrf_token(client)}
    )
    assert response.status_code == 302, response.get_data(as_text=True)


def post_form(client: FlaskClient, url: str, data: dict[str, str], page: str = "/", **kwargs):  # type: ignore[no-untyped-def]
    return client.post(url, data={**data, "csrf_token": csrf_token(client, page)}, **kwargs)
