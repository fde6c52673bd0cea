"""Settings read from the environment (and a .env file), with defaults that need no set-up."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import quote

from dotenv import load_dotenv

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# Where the SQLite file, Redis's data under `make run` and first-admin.txt live; INSTANCE_DIR
# (read from the environment, not .env) moves it, e.g. for a test that must not touch instance/.
INSTANCE_DIR = Path(os.environ.get("INSTANCE_DIR") or PROJECT_ROOT / "instance").resolve()
SECRET_KEY_FILE = INSTANCE_DIR / "secret-key"
DEVELOPMENT = "development"
# Secrets that were ever published (the old default, the .env.example placeholder): a session
# cookie signed with one of them can be forged by anyone, so they count as no secret at all.
PUBLIC_SECRETS = frozenset({"dev-only-change-me", "change-me-in-production"})


class InsecureSecretKey(RuntimeError):
    """SECRET_KEY is missing or public: the process must not start."""


# JOB_RATE_LIMIT_MAX when unset, by GENERATOR: only a generator that calls a provider is limited.
DEFAULT_RATE_LIMIT_MAX = {"openai": 10}


def _int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def _float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


def _bool(name: str, default: bool) -> bool:
    return os.environ.get(name, str(default)).strip().lower() in ("1", "true", "yes", "on")


def development_secret_key(path: Path) -> str:
    """The secret kept in `path` (mode 0600), created on first use: `make run` needs no set-up,
    and sessions survive its restarts."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


def _secret_key(app_env: str) -> str:
    configured = os.environ.get("SECRET_KEY", "").strip()
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


def _redis_url() -> str:
    """REDIS_URL; else the seed's REDIS_HOST, REDIS_PORT and REDIS_PASSWORD; else localhost."""
    if url := os.environ.get("REDIS_URL"):
        return url
    host, port = os.environ.get("REDIS_HOST") or "localhost", os.environ.get("REDIS_PORT") or "6379"
    if not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):
        raise ValueError(f"REDIS_PORT={port!r} is not a port number")
    password = os.environ.get("REDIS_PASSWORD")
    auth = f":{quote(password, safe='')}@" if password else ""
    return f"redis://{auth}{host}:{port}/0"


def load_settings() -> dict[str, Any]:
    """Read every setting from the environment; a .env file fills in what is unset."""
    load_dotenv(PROJECT_ROOT / ".env", override=False)
    app_env = os.environ.get("APP_ENV", "production").strip().lower()
    if app_env not in ("production", DEVELOPMENT):
        raise ValueError(f"APP_ENV must be production or {DEVELOPMENT}, not {app_env!r}")
    database_url = os.environ.get("DATABASE_URL") or f"sqlite:///{INSTANCE_DIR / 'curriculum.db'}"
    for prefix in ("postgres://", "postgresql://"):  # Heroku's spelling; psycopg 3 is our driver
        if database_url.startswith(prefix):
            database_url = "postgresql+psycopg://" + database_url[len(prefix) :]
    generator = os.environ.get("GENERATOR", "offline")
    return {
        # production (the default) or development: only development may run without SECRET_KEY.
        "APP_ENV": app_env,
        "SECRET_KEY": _secret_key(app_env),
        "SQLALCHEMY_DATABASE_URI": database_url,
        "REDIS_URL": _redis_url(),
        # High availability: Sentinels (host:port,host:port) that know where the master named
        # REDIS_SENTINEL_MASTER is; REDIS_URL then gives only the master's password, db and TLS.
        "REDIS_SENTINELS": os.environ.get("REDIS_SENTINELS", ""),
        "REDIS_SENTINEL_MASTER": os.environ.get("REDIS_SENTINEL_MASTER", ""),
        "REDIS_SENTINEL_PASSWORD": os.environ.get("REDIS_SENTINEL_PASSWORD", ""),
        "MAX_CONTENT_LENGTH": _int("MAX_CONTENT_LENGTH", 256 * 1024),
        # Sign-in sessions: HttpOnly and SameSite=Lax always; Secure wherever HTTPS is served.
        "SESSION_COOKIE_SECURE": _bool("SESSION_COOKIE_SECURE", False),
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "REMEMBER_COOKIE_SECURE": _bool("SESSION_COOKIE_SECURE", False),
        "REMEMBER_COOKIE_HTTPONLY": True,
        "WTF_CSRF_TIME_LIMIT": None,  # a token lives as long as the session, not an hour
        # A sign-in lasts at most this long (the cookie's Expires, and a check of the session row).
        "SESSION_MAX_AGE_S": _int("SESSION_MAX_AGE_S", 14 * 86400),
        "PERMANENT_SESSION_LIFETIME": _int("SESSION_MAX_AGE_S", 14 * 86400),
        # Failed sign-ins and failed API token checks, counted in Redis (Flask-Limiter notation).
        "SIGNIN_FAILURE_LIMIT_PER_ACCOUNT": os.environ.get(
            "SIGNIN_FAILURE_LIMIT_PER_ACCOUNT", "10 per 15 minutes"
        ),
        "SIGNIN_FAILURE_LIMIT_PER_ADDRESS": os.environ.get(
            "SIGNIN_FAILURE_LIMIT_PER_ADDRESS", "50 per 15 minutes"
        ),
        "API_TOKEN_FAILURE_LIMIT": os.environ.get("API_TOKEN_FAILURE_LIMIT", "30 per 15 minutes"),
        # Proxies in front of gunicorn whose X-Forwarded-For is believed (0: the socket's address).
        "TRUSTED_PROXY_HOPS": _int("TRUSTED_PROXY_HOPS", 0),
        "POLL_INTERVAL_S": _float("POLL_INTERVAL_S", 3),
        # Build event streams (SSE): how long one stream lives before the browser reconnects
        # (Last-Event-ID, nothing lost), the database re-read when no doorbell rang, keep-alives,
        # and how many streams one user may hold open across every web process.
        "SSE_MAX_STREAM_S": _float("SSE_MAX_STREAM_S", 300),
        "SSE_SAFETY_POLL_S": _float("SSE_SAFETY_POLL_S", 20),
        "SSE_KEEPALIVE_S": _float("SSE_KEEPALIVE_S", 15),
        "SSE_MAX_STREAMS_PER_USER": _int("SSE_MAX_STREAMS_PER_USER", 20),
        # Retry policy (the seed documents' names): attempts in all, first retry delay in ms.
        "JOB_MAX_ATTEMPTS": _int("JOB_MAX_ATTEMPTS", 3),
        "JOB_BACKOFF_TYPE": os.environ.get("JOB_BACKOFF_TYPE", "exponential"),
        "JOB_BACKOFF_DELAY": _int("JOB_BACKOFF_DELAY", 1000),
        "JOB_TIMEOUT_S": _int("JOB_TIMEOUT_S", 1800),
        "JOB_KEEP_COMPLETED_S": _int("JOB_KEEP_COMPLETED_S", 24 * 3600),
        "JOB_KEEP_FAILED_S": _int("JOB_KEEP_FAILED_S", 7 * 24 * 3600),
        # Stuck-work recovery: a running step renews its lease; a lease that lapses means
        # its worker is gone, and the next recovery sweep runs the step again.
        "JOB_LEASE_TTL_S": _float("JOB_LEASE_TTL_S", 30),
        "JOB_RECOVERY_INTERVAL_S": _float("JOB_RECOVERY_INTERVAL_S", 10),
        "JOB_MAX_WORKER_LOSSES": _int("JOB_MAX_WORKER_LOSSES", 2),
        # The AI provider's rate limit, across every worker: calls per window (0: no limit). Unset,
        # it is 10 for a provider (GENERATOR=openai) and off for the offline generator, which
        # calls none; set, it applies to any generator.
        "JOB_RATE_LIMIT_MAX": _int("JOB_RATE_LIMIT_MAX", DEFAULT_RATE_LIMIT_MAX.get(generator, 0)),
        "JOB_RATE_LIMIT_DURATION": _int("JOB_RATE_LIMIT_DURATION", 60_000),
        "JOB_RATE_LIMIT_TOKENS": _int("JOB_RATE_LIMIT_TOKENS", 0),  # tokens per window (0: no cap)
        "JOB_CONCURRENCY_DECOMPOSE": _int("JOB_CONCURRENCY_DECOMPOSE", 3),
        "JOB_CONCURRENCY_GENERATE_KU": _int("JOB_CONCURRENCY_GENERATE_KU", 5),
        "MAX_ACTIVE_BUILDS_PER_USER": _int("MAX_ACTIVE_BUILDS_PER_USER", 3),
        # Builds waiting for one of those slots; one more start is a 429.
        "MAX_PENDING_BUILDS_PER_USER": _int("MAX_PENDING_BUILDS_PER_USER", 10),
        "WORKER_SHUTDOWN_TIMEOUT_S": _float("WORKER_SHUTDOWN_TIMEOUT_S", 25),
        "ESTIMATED_MODULE_MINUTES": _float("ESTIMATED_MODULE_MINUTES", 2),
        "GENERATOR": generator,
        # GENERATOR=openai: any server that speaks the Chat Completions protocol.
        "OPENAI_BASE_URL": os.environ.get("OPENAI_BASE_URL", "https://api.openai.com/v1"),
        "OPENAI_API_KEY": os.environ.get("OPENAI_API_KEY", ""),
        "OPENAI_MODEL": os.environ.get("OPENAI_MODEL", "gpt-4o-mini"),
        "OPENAI_TIMEOUT_S": _float("OPENAI_TIMEOUT_S", 120),
        # auto (structured output, stepping down where refused), json_schema, json_object or none
        "OPENAI_RESPONSE_FORMAT": os.environ.get("OPENAI_RESPONSE_FORMAT", "auto"),
        "OPENAI_MAX_OUTPUT_TOKENS": _int("OPENAI_MAX_OUTPUT_TOKENS", 4096),
        "OPENAI_MAX_429_WAITS": _int("OPENAI_MAX_429_WAITS", 5),
        "OPENAI_COOLDOWN_S": _float("OPENAI_COOLDOWN_S", 10),
        "OPENAI_PRICE_PROMPT_PER_1K": _float("OPENAI_PRICE_PROMPT_PER_1K", 0),
        "OPENAI_PRICE_COMPLETION_PER_1K": _float("OPENAI_PRICE_COMPLETION_PER_1K", 0),
        "GENERATOR_LATENCY_MS": _int("GENERATOR_LATENCY_MS", 0),
        "GENERATOR_FAILURE_RATE": _float("GENERATOR_FAILURE_RATE", 0.0),
        "GENERATOR_FAIL_ON": os.environ.get("GENERATOR_FAIL_ON", ""),
        "ALERT_WEBHOOK_URL": os.environ.get("ALERT_WEBHOOK_URL", ""),
        "ALERT_TIMEOUT_S": _float("ALERT_TIMEOUT_S", 5),
        "LOG_LEVEL": os.environ.get("LOG_LEVEL", "INFO"),
        "LOG_FORMAT": os.environ.get("LOG_FORMAT", "text"),  # or json
    }
