"""Fixtures that start real services: redis-server on a free port, a SQLite file per test,
worker processes running `python worker.py`, and gunicorn where concurrency matters."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_migrate import upgrade
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from app import create_app
from app.extensions import db
from tests import services
from tests.helpers.browser import browser, page  # noqa: F401  (fixtures for every browser test)
from tests.helpers.streams import procfile_web  # noqa: F401  (the streams' real web server)
from tests.helpers.users import make_user
from tests.services import ProcessGroup, RedisServer, start_gunicorn, start_worker

# Fast settings so retries, leases and recovery happen in seconds, not minutes.
FAST_JOB_SETTINGS = {
    "JOB_BACKOFF_DELAY": "100",
    "JOB_LEASE_TTL_S": "3",
    "JOB_RECOVERY_INTERVAL_S": "1",
    "JOB_TIMEOUT_S": "120",
    "GENERATOR_LATENCY_MS": "0",
    "GENERATOR_FAILURE_RATE": "0",
    "GENERATOR_FAIL_ON": "",
    "LOG_LEVEL": "INFO",
    "JOB_RATE_LIMIT_MAX": "0",
    "JOB_CONCURRENCY_DECOMPOSE": "2",
    "JOB_CONCURRENCY_GENERATE_KU": "2",
    "POLL_INTERVAL_S": "0.5",
}


@pytest.fixture(autouse=True)
def _slow_marker_is_true(request: pytest.FixtureRequest) -> Iterator[None]:
    """Tell tests/services.py whether this test may start processes (see refuse_in_a_fast_test)."""
    services.fast_test_running = None if request.node.get_closest_marker("slow") else request.node.nodeid
    yield
    services.fast_test_running = None


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer) -> Path:
    """A SQLite file the committed migrations built once per session: a test starts from a copy,
    which saves it the second that running every migration again costs."""
    path = tmp_path_factory.mktemp("migrated") / "migrated.db"
    with pytest.MonkeyPatch.context() as environment:
        for name, value in {"DATABASE_URL": f"sqlite:///{path}", "REDIS_URL": redis_server.url}.items():
            environment.setenv(name, value)
        environment.setenv("SECRET_KEY", "test-secret")
        template_app = create_app({"TESTING": True})
        with template_app.app_context():
            upgrade()
            db.engine.dispose()
    return path


@pytest.fixture
def database_url(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """A SQLite file per test (a copy of the migrated one); with TEST_DATABASE_URL (a PostgreSQL
    server), a fresh database on that server per test, dropped afterwards."""
    server_url = os.environ.get("TEST_DATABASE_URL")
    if not server_url:
        database = tmp_path / "test.db"
        shutil.copyfile(request.getfixturevalue("migrated_sqlite"), database)
        yield f"sqlite:///{database}"
        return
    name = f"cb_test_{uuid.uuid4().hex[:12]}"
    server = make_url(server_url).set(drivername="postgresql+psycopg")
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield server.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def service_env(
    redis_server: RedisServer, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """The environment the app, the workers and gunicorn share for one test."""
    if redis_server.process is None:  # a test stopped it and failed before starting it again
        redis_server.start()
    redis_server.client().flushall()
    settings = {
        "REDIS_URL": redis_server.url,
        "DATABASE_URL": database_url,
        "SECRET_KEY": "test-secret",
        **FAST_JOB_SETTINGS,
    }
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    return {**os.environ, **settings}


@pytest.fixture
def app(service_env: dict[str, str]) -> Iterator[Flask]:
    app = create_app({"TESTING": True})
    if os.environ.get("TEST_DATABASE_URL"):  # on SQLite, migrated_sqlite ran them once a session
        with app.app_context():
            upgrade()  # the committed migrations build the schema, so they are tested too
    yield app
    with app.app_context():
        db.engine.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def auth(app: Flask) -> dict[str, str]:
    return make_user(app, "designer@example.com")


@pytest.fixture
def workers(service_env: dict[str, str], tmp_path: Path) -> Iterator[Callable[..., ProcessGroup]]:
    """Start `python worker.py` processes; each call may add environment settings."""
    started: list[ProcessGroup] = []

    def _start(**extra: str) -> ProcessGroup:
        env = {**service_env, **{k: str(v) for k, v in extra.items()}}
        group = start_worker(env, tmp_path / f"worker-{len(started)}.log")
        started.append(group)
        return group

    yield _start
    for group in started:
        group.stop()


@pytest.fixture
def web(service_env: dict[str, str], tmp_path: Path, app: Flask) -> Iterator[str]:
    """gunicorn with four processes serving the app; yields its base URL."""
    group, base = start_gunicorn(service_env, tmp_path / "gunicorn.log")
    yield base
    group.stop()
