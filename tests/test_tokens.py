"""API tokens: optional expiry, a cheap last-used time, listed and revoked from the CLI."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from app.database import utcnow
from app.extensions import db
from app.models import ApiToken, User


def _create_user(app) -> None:  # type: ignore[no-untyped-def]
    result = app.test_cli_runner().invoke(args=["users", "create", "ada@example.com", "--password", "pw"])
    assert result.exit_code == 0, result.output


def _issue(app, *options: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    result = app.test_cli_runner().invoke(args=["users", "token", "ada@example.com", *options])
    assert result.exit_code == 0, result.output
    return {"Authorization": f"Bearer {result.output.strip()}"}


def _token(app) -> ApiToken:  # type: ignore[no-untyped-def]
    return db.session.scalar(select(ApiToken))


def test_a_token_with_an_expiry_works_until_then_and_is_refused_after(app, client):
    _create_user(app)
    auth = _issue(app, "--expires-in", "30d")
    with app.app_context():
        expires_at = _token(app).expires_at
    assert timedelta(days=29, hours=23) < expires_at - utcnow() <= timedelta(days=30)
    assert client.get("/api/jobs", headers=auth).status_code == 200

    with app.app_context():
        db.session.execute(update(ApiToken).values(expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    response = client.get("/api/jobs", headers=auth)

    assert response.status_code == 401
    assert response.get_json()["error"] == {"code": "unauthorized", "message": "The token has expired."}


def test_a_token_without_expiry_never_expires(app, client):
    _create_user(app)
    auth = _issue(app)

    with app.app_context():
        assert _token(app).expires_at is None
    assert client.get("/api/jobs", headers=auth).status_code == 200


def test_a_bad_expiry_is_refused_and_issues_nothing(app):
    _create_user(app)

    result = app.test_cli_runner().invoke(args=["users", "token", "ada@example.com", "--expires-in", "soon"])

    assert result.exit_code != 0 and "positive whole number" in result.output
    with app.app_context():
        assert _token(app) is None


def test_last_used_is_written_on_first_use_then_at_most_once_a_minute(app, client):
    _create_user(app)
    auth = _issue(app)
    with app.app_context():
        assert _token(app).last_used_at is None

    client.get("/api/jobs", headers=auth)
    with app.app_context():
        first = _token(app).last_used_at
    client.get("/api/jobs", headers=auth)
    with app.app_context():
        unchanged = _token(app).last_used_at
        db.session.execute(update(ApiToken).values(last_used_at=utcnow() - timedelta(seconds=61)))
        db.session.commit()
    client.get("/api/jobs", headers=auth)
    with app.app_context():
        renewed = _token(app).last_used_at

    assert first is not None and unchanged == first
    assert renewed > first


def test_tokens_lists_id_created_last_used_and_expiry_but_never_the_secret(app, client):
    _create_user(app)
    auth = _issue(app, "--expires-in", "12h")
    _issue(app)
    client.get("/api/jobs", headers=auth)

    result = app.test_cli_runner().invoke(args=["users", "tokens", "ada@example.com"])

    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[0].split() == ["ID", "CREATED", "LAST", "USED", "EXPIRES"]
    assert len(lines) == 3
    assert "never" in lines[2]  # the second token: never used, never expires
    secret = auth["Authorization"].split()[1]
    with app.app_context():
        hashes = {t.token_hash for t in db.session.scalars(select(ApiToken))}
    assert secret not in result.output and not any(h in result.output for h in hashes)


def test_a_revoked_token_is_refused(app, client):
    _create_user(app)
    auth = _issue(app)
    with app.app_context():
        token_id = _token(app).id

    result = app.test_cli_runner().invoke(args=["users", "revoke-token", "ada@example.com", str(token_id)])

    assert result.exit_code == 0 and f"revoked token {token_id}" in result.output
    assert client.get("/api/jobs", headers=auth).status_code == 401


def test_revoking_another_users_token_is_refused_and_changes_nothing(app, client):
    _create_user(app)
    app.test_cli_runner().invoke(args=["users", "create", "bob@example.com", "--password", "pw"])
    auth = _issue(app)
    with app.app_context():
        token_id = _token(app).id

    result = app.test_cli_runner().invoke(args=["users", "revoke-token", "bob@example.com", str(token_id)])
    unknown = app.test_cli_runner().invoke(
        args=["users", "revoke-token", "ada@example.com", "99999999999999999999"]
    )

    assert result.exit_code != 0 and f"bob@example.com has no token {token_id}" in result.output
    assert unknown.exit_code != 0
    assert client.get("/api/jobs", headers=auth).status_code == 200


def test_listing_tokens_of_an_unknown_user_is_refused(app):
    result = app.test_cli_runner().invoke(args=["users", "tokens", "ghost@example.com"])

    assert result.exit_code != 0 and "no user ghost@example.com" in result.output


def test_deleting_a_user_keeps_no_tokens_or_sessions(app):
    _create_user(app)
    _issue(app)
    with app.app_context():
        user = db.session.scalar(select(User))
        user.start_session()
        db.session.commit()
        db.session.delete(user)
        db.session.commit()
        assert db.session.scalar(select(ApiToken)) is None


def test_an_expired_token_is_marked_so_in_the_list(app):
    _create_user(app)
    _issue(app, "--expires-in", "1h")
    with app.app_context():
        db.session.execute(update(ApiToken).values(expires_at=utcnow() - timedelta(minutes=1)))
        db.session.commit()

    result = app.test_cli_runner().invoke(args=["users", "tokens", "ada@example.com"])

    assert result.output.strip().splitlines()[1].endswith("(expired)")
