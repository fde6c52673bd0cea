"""SECRET_KEY: web, worker and CLI refuse to start without a real secret outside development, so
nobody can sign a session cookie with a published default; `make run` keeps its own in instance/."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest
from flask import Flask
from flask.sessions import SecureCookieSessionInterface
from flask_migrate import upgrade

import app.config as settings
from app import create_app
from app.config import InsecureSecretKey, development_secret_key
from app.devserver import use_development_settings
from app.extensions import db
from app.models import User
from tests.services import ROOT

OLD_DEFAULT = "dev-only-change-me"


def _forged_admin_cookie(app: Flask, secret: str) -> str:
    """A session cookie for the first admin, signed with `secret` (what an attacker would do)."""
    with app.app_context():
        admin = User(email="root@example.com", is_admin=True)
        admin.set_password("correct horse battery staple")
        db.session.add(admin)
        db.session.commit()
        admin_id = admin.id
    forger = Flask("forger")
    forger.secret_key = secret
    serializer = SecureCookieSessionInterface().get_signing_serializer(forger)
    assert serializer is not None
    return serializer.dumps({"_user_id": str(admin_id), "_fresh": True})


def test_the_app_refuses_to_start_without_secret_key(
    service_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SECRET_KEY")
    monkeypatch.delenv("APP_ENV", raising=False)
    with pytest.raises(InsecureSecretKey, match="SECRET_KEY is not set"):
        create_app()


@pytest.mark.parametrize("public", [OLD_DEFAULT, "change-me-in-production", "  "])
def test_the_app_refuses_a_published_or_blank_secret_key(
    service_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, public: str
) -> None:
    monkeypatch.setenv("SECRET_KEY", public)
    with pytest.raises(InsecureSecretKey, match="SECRET_KEY"):
        create_app()


def test_overrides_cannot_bring_the_public_default_back(service_env: dict[str, str]) -> None:
    with pytest.raises(InsecureSecretKey, match="SECRET_KEY"):
        create_app({"SECRET_KEY": OLD_DEFAULT})


@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "worker.py"],
        [sys.executable, "-m", "flask", "--app", "wsgi", "jobs", "reconcile"],
        [sys.executable, "-m", "gunicorn", "wsgi:app", "--bind", "127.0.0.1:0", "--workers", "1"],
    ],
    ids=["worker", "cli", "gunicorn"],
)
@pytest.mark.slow
def test_worker_cli_and_web_exit_naming_secret_key_when_it_is_unset(
    service_env: dict[str, str], command: list[str]
) -> None:
    env = {k: v for k, v in service_env.items() if k not in ("SECRET_KEY", "APP_ENV")}
    finished = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert finished.returncode != 0
    assert "SECRET_KEY is not set" in finished.stdout + finished.stderr


def test_in_development_a_generated_secret_replaces_the_public_default(
    service_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("SECRET_KEY")
    monkeypatch.delenv("APP_ENV", raising=False)
    monkeypatch.setattr(settings, "SECRET_KEY_FILE", tmp_path / "instance" / "secret-key")
    use_development_settings()  # what `make run` does first
    app = create_app({"TESTING": True})
    with app.app_context():
        upgrade()
    assert app.config["SECRET_KEY"] not in (OLD_DEFAULT, "")
    client = app.test_client()
    client.set_cookie("session", _forged_admin_cookie(app, OLD_DEFAULT))
    response = client.get("/admin/")
    assert response.status_code == 302 and "/sign-in" in response.headers["Location"]


def test_a_misspelt_app_env_stops_the_app_naming_it(
    service_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APP_ENV", "developement")
    with pytest.raises(ValueError, match="APP_ENV"):
        create_app()


def test_the_development_secret_is_created_0600_once_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "instance" / "secret-key"
    first = development_secret_key(path)
    assert len(first) >= 48
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert development_secret_key(path) == first


def test_every_process_of_make_run_signs_with_the_same_secret(
    service_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("SECRET_KEY")
    monkeypatch.setenv("APP_ENV", "development")
    monkeypatch.setattr(settings, "SECRET_KEY_FILE", tmp_path / "secret-key")
    web, worker = create_app(), create_app()
    assert web.config["SECRET_KEY"] == worker.config["SECRET_KEY"] == (tmp_path / "secret-key").read_text()
