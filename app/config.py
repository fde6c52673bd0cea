"""Settings read from the environment (and a .env file), with defaults that need no set-up."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from dotenv import load_dotenv

PROJECT_ROOT = Path(__file__).resolve().parent.parent
INSTANCE_DIR = PROJECT_ROOT / "instance"


def _int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def _float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


def _bool(name: str, default: bool) -> bool:
    return os.environ.get(name, str(default)).strip().lower() in ("1", "true", "yes", "on")


def load_settings() -> dict[str, Any]:
    """Read every setting from the environment; a .env file fills in what is unset."""
    load_dotenv(PROJECT_ROOT / ".env", override=False)
    database_url = os.environ.get("DATABASE_URL") or f"sqlite:///{INSTANCE_DIR / 'curriculum.db'}"
    for prefix in ("postgres://", "postgresql://"):  # Heroku's spelling; psycopg 3 is our driver
        if database_url.startswith(prefix):
            database_url = "postgresql+psycopg://" + database_url[len(prefix) :]
    return {
        "SECRET_KEY": os.environ.get("SECRET_KEY", "dev-only-change-me"),
        "SQLALCHEMY_DATABASE_URI": database_url,
        "REDIS_URL": os.environ.get("REDIS_URL", "redis://localhost:6379/0"),
        "MAX_CONTENT_LENGTH": _int("MAX_CONTENT_LENGTH", 256 * 1024),
        # Sign-in sessions: HttpOnly and SameSite=Lax always; Secure wherever HTTPS is served.
        "SESSION_COOKIE_SECURE": _bool("SESSION_COOKIE_SECURE", False),
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "REMEMBER_COOKIE_SECURE": _bool("SESSION_COOKIE_SECURE", False),
        "REMEMBER_COOKIE_HTTPONLY": True,
        "WTF_CSRF_TIME_LIMIT": None,  # a token lives as long as the session, not an hour
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
        # The AI provider's rate limit, across every worker: calls per window (0: no limit).
        "JOB_RATE_LIMIT_MAX": _int("JOB_RATE_LIMIT_MAX", 10),
        "JOB_RATE_LIMIT_DURATION": _int("JOB_RATE_LIMIT_DURATION", 60_000),
        "JOB_RATE_LIMIT_TOKENS": _int("JOB_RATE_LIMIT_TOKENS", 0),  # tokens per window (0: no cap)
        "JOB_CONCURRENCY_DECOMPOSE": _int("JOB_CONCURRENCY_DECOMPOSE", 3),
        "JOB_CONCURRENCY_GENERATE_KU": _int("JOB_CONCURRENCY_GENERATE_KU", 5),
        "MAX_ACTIVE_BUILDS_PER_USER": _int("MAX_ACTIVE_BUILDS_PER_USER", 3),
        "WORKER_SHUTDOWN_TIMEOUT_S": _float("WORKER_SHUTDOWN_TIMEOUT_S", 25),
        "ESTIMATED_MODULE_MINUTES": _float("ESTIMATED_MODULE_MINUTES", 2),
        "GENERATOR": os.environ.get("GENERATOR", "offline"),
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
