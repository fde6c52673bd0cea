"""Failed sign-ins and failed API token checks are throttled in Redis, and a wrong password
costs the same whether or not the account exists."""

from __future__ import annotations

import re
import statistics
import time

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient

from app import create_app
from tests.helpers.users import make_user
from tests.helpers.web import PASSWORD, csrf_token

LIMITS = {
    "SIGNIN_FAILURE_LIMIT_PER_ACCOUNT": "3 per minute",
    "SIGNIN_FAILURE_LIMIT_PER_ADDRESS": "6 per minute",
    "API_TOKEN_FAILURE_LIMIT": "4 per minute",
}


@pytest.fixture
def app(app: Flask) -> Flask:
    """The shared app with small limits, so a test needs only a few attempts."""
    app.config.update(LIMITS)
    return app


def _sign_in(client: FlaskClient, email: str, password: str, address: str = "127.0.0.1", **headers: str):  # type: ignore[no-untyped-def]
    return client.post(
        "/sign-in",
        data={"email": email, "password": password, "csrf_token": csrf_token(client)},
        environ_base={"REMOTE_ADDR": address},
        headers=headers,
    )


def _signed_in(client: FlaskClient) -> bool:
    return client.get("/").status_code == 200


def test_fifty_wrong_passwords_then_the_right_one_is_refused_with_a_message_and_retry_after(app, client):
    make_user(app, "ada@example.com")
    for _ in range(50):
        _sign_in(client, "ada@example.com", "wrong")

    response = _sign_in(client, "ada@example.com", PASSWORD)

    assert response.status_code == 429
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    page = response.get_data(as_text=True)
    assert 'id="password-error"' in page and "Too many failed sign-ins" in page
    assert not _signed_in(client)


def test_an_account_is_throttled_whatever_address_the_guesses_come_from(app):
    make_user(app, "ada@example.com")
    for number in range(3):
        _sign_in(app.test_client(), "ada@example.com", "wrong", address=f"10.0.0.{number}")

    response = _sign_in(app.test_client(), "ada@example.com", PASSWORD, address="10.0.1.1")

    assert response.status_code == 429


def test_an_address_is_throttled_across_accounts_but_another_address_is_not(app):
    make_user(app, "ada@example.com")
    attacker = app.test_client()
    for number in range(6):
        _sign_in(attacker, f"guess{number}@example.com", "wrong", address="10.0.0.9")

    refused = _sign_in(attacker, "ada@example.com", PASSWORD, address="10.0.0.9")
    elsewhere = app.test_client()
    accepted = _sign_in(elsewhere, "ada@example.com", PASSWORD, address="10.0.0.10")

    assert refused.status_code == 429
    assert accepted.status_code == 302 and _signed_in(elsewhere)


def test_a_forged_x_forwarded_for_does_not_dodge_the_address_limit(app):
    """With no trusted proxy (TRUSTED_PROXY_HOPS=0) the header is not believed."""
    make_user(app, "ada@example.com")
    client = app.test_client()
    for number in range(6):
        _sign_in(client, f"guess{number}@example.com", "wrong", **{"X-Forwarded-For": f"192.0.2.{number}"})

    response = _sign_in(client, "ada@example.com", PASSWORD, **{"X-Forwarded-For": "192.0.2.200"})

    assert response.status_code == 429


def test_behind_one_trusted_proxy_each_forwarded_client_has_its_own_limit(service_env, monkeypatch):
    monkeypatch.setenv("TRUSTED_PROXY_HOPS", "1")
    app = create_app({"TESTING": True, **LIMITS})
    from flask_migrate import upgrade

    with app.app_context():
        upgrade()
    make_user(app, "ada@example.com")
    attacker = app.test_client()
    for number in range(6):
        _sign_in(attacker, f"guess{number}@example.com", "wrong", **{"X-Forwarded-For": "192.0.2.1"})

    refused = _sign_in(attacker, "ada@example.com", PASSWORD, **{"X-Forwarded-For": "192.0.2.1"})
    other = app.test_client()
    accepted = _sign_in(other, "ada@example.com", PASSWORD, **{"X-Forwarded-For": "192.0.2.2"})

    assert refused.status_code == 429 and accepted.status_code == 302


def test_successful_sign_ins_are_not_counted(app):
    make_user(app, "ada@example.com")
    for _ in range(8):
        client = app.test_client()
        assert _sign_in(client, "ada@example.com", PASSWORD).status_code == 302


def test_failed_bearer_tokens_from_one_address_get_429_json_with_retry_after(app, client, auth):
    bad = {"Authorization": "Bearer cb_not-a-real-token"}
    answers = [client.get("/api/jobs", headers=bad).status_code for _ in range(4)]

    throttled = client.get("/api/jobs", headers=bad)
    other_address = client.get("/api/jobs", headers=bad, environ_base={"REMOTE_ADDR": "10.9.9.9"})

    assert answers == [401] * 4
    assert throttled.status_code == 429
    assert throttled.get_json()["error"]["code"] == "too_many_requests"
    assert 1 <= int(throttled.headers["Retry-After"]) <= 60
    assert other_address.status_code == 401


def test_a_valid_token_still_works_from_a_throttled_address(app, client, auth):
    """Tokens are 256 random bits: a throttled neighbour behind the same NAT must not lock it out."""
    for _ in range(5):
        client.get("/api/jobs", headers={"Authorization": "Bearer cb_wrong"})

    assert client.get("/api/jobs", headers=auth).status_code == 200


def test_a_bad_limit_setting_stops_the_app_with_its_name(service_env, monkeypatch):
    monkeypatch.setenv("SIGNIN_FAILURE_LIMIT_PER_ACCOUNT", "lots")

    with pytest.raises(ValueError, match="SIGNIN_FAILURE_LIMIT_PER_ACCOUNT"):
        create_app({"TESTING": True})


def _median_sign_in_seconds(client: FlaskClient, email: str, token: str) -> float:
    durations = []
    for _ in range(7):
        started = time.perf_counter()
        client.post("/sign-in", data={"email": email, "password": "wrong", "csrf_token": token})
        durations.append(time.perf_counter() - started)
    return statistics.median(durations)


@pytest.mark.slow
def test_a_wrong_password_costs_the_same_for_an_unknown_email_as_for_a_real_one(app, client):
    app.config.update(
        SIGNIN_FAILURE_LIMIT_PER_ACCOUNT="1000 per minute", SIGNIN_FAILURE_LIMIT_PER_ADDRESS="1000 per minute"
    )
    make_user(app, "ada@example.com", production_hash=True)  # the hash the unknown email is timed against
    token = csrf_token(client)
    _median_sign_in_seconds(client, "nobody@example.com", token)  # warm both paths once

    ratios = []
    for _ in range(2):  # interleaved rounds, so a burst of load on the machine hits both
        real = _median_sign_in_seconds(client, "ada@example.com", token)
        unknown = _median_sign_in_seconds(client, "nobody@example.com", token)
        ratios.append(unknown / real)

    assert 0.5 <= statistics.median(ratios) <= 2, ratios


def test_with_redis_down_a_sign_in_is_refused_with_503_not_let_through_uncounted(app, client, redis_server):
    make_user(app, "ada@example.com")
    token = csrf_token(client)
    redis_server.stop()
    try:
        response = client.post(
            "/sign-in", data={"email": "ada@example.com", "password": PASSWORD, "csrf_token": token}
        )
    finally:
        redis_server.start()

    assert response.status_code == 503
    assert not _signed_in(client)


@pytest.mark.slow
def test_failures_are_counted_across_gunicorn_processes(app, web):
    """Four processes, one count in Redis: the default 10 failures per account, then 429."""
    make_user(app, "ada@example.com")
    answers = []
    for _ in range(11):
        browser = requests.Session()  # a new connection and cookie jar each time
        page = browser.get(f"{web}/sign-in", timeout=60).text
        token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)
        answer = browser.post(
            f"{web}/sign-in",
            data={"email": "ada@example.com", "password": "wrong", "csrf_token": token},
            allow_redirects=False,
            timeout=60,
        )
        answers.append(answer.status_code)

    assert answers == [422] * 10 + [429]
