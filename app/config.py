"""app.config built from the typed settings (app/settings.py lists every variable), with the
parts that touch the file system: the instance folder, the .env file and the development secret."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dotenv import load_dotenv

from app.settings import DEVELOPMENT, Settings, read_settings

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# Where the SQLite file, Redis's data under `make run` and first-admin.txt live; INSTANCE_DIR
# (read from the environment, not .env) moves it, e.g. for a test that must not touch instance/.
INSTANCE_DIR = Path(os.environ.get("INSTANCE_DIR") or PROJECT_ROOT / "instance").resolve()
SECRET_KEY_FILE = INSTANCE_DIR / "secret-key"
# Fills in what the environment leaves unset; the environment wins.
DOTENV_FILE = PROJECT_ROOT / ".env"
# Secrets that were ever published (the old default, the .env.example placeholder): a session
# cookie signed with one of them can be forged by anyone, so they count as no secret at all.
PUBLIC_SECRETS = frozenset({"dev-only-change-me", "change-me-in-production"})


class InsecureSecretKey(RuntimeError):
    """SECRET_KEY is missing or public: the process must not start."""


def development_secret_key(path: Path) -> str:
    """The secret kept in `path` (mode 0600), created on first use: `make run` needs no set-up,
    and sessions survive its restarts."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


def _secret_key(configured: str, app_env: str) -> str:
    configured = configured.strip()
    if not configured and app_env == DEVELOPMENT:
        return development_secret_key(SECRET_KEY_FILE)
    return configured


def check_secret_key(config: dict[str, Any]) -> None:
    """Refuse to run with no secret or a public one (anyone could sign a session cookie)."""
    secret = str(config.get("SECRET_KEY") or "").strip()
    if not secret or secret in PUBLIC_SECRETS:
        problem = "is not set" if not secret else "is a published placeholder"
        raise InsecureSecretKey(
            f"SECRET_KEY {problem}: set SECRET_KEY to a long random value "
            "(python -c 'import secrets; print(secrets.token_urlsafe(48))'), the same for every web "
            f"and worker process. For development only, APP_ENV={DEVELOPMENT} (what `make run` sets) "
            f"keeps a generated one in {SECRET_KEY_FILE}."
        )


def load_settings(overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """app.config's settings: the registry's variables read from the environment (a .env file fills
    in what is unset) and checked, `overrides` winning, plus what Flask derives from them."""
    load_dotenv(DOTENV_FILE, override=False)
    settings = read_settings(overrides)
    config = settings.app_config()
    database_url = config.pop("DATABASE_URL") or f"sqlite:///{INSTANCE_DIR / 'curriculum.db'}"
    return {
        **config,
        "SECRET_KEY": _secret_key(settings.SECRET_KEY, settings.APP_ENV),
        "SQLALCHEMY_DATABASE_URI": database_url,
        # Sign-in sessions: HttpOnly and SameSite=Lax always; Secure wherever HTTPS is served.
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "REMEMBER_COOKIE_SECURE": settings.SESSION_COOKIE_SECURE,
        "REMEMBER_COOKIE_HTTPONLY": True,
        "WTF_CSRF_TIME_LIMIT": None,  # a token lives as long as the session, not an hour
        # The session cookie's Expires; SESSION_MAX_AGE_S is also checked against the session row.
        "PERMANENT_SESSION_LIFETIME": settings.SESSION_MAX_AGE_S,
        **{name: value for name, value in (overrides or {}).items() if name not in Settings.model_fields},
    }
