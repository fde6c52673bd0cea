"""SIGTERM to the web process as the Procfile starts it: the request in flight is finished,
then the process exits."""

from __future__ import annotations

import shlex
import signal
import sqlite3
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

from app.extensions import db
from app.models import LearningPath
from tests.services import ROOT, ProcessGroup, free_port, wait_until

pytestmark = pytest.mark.slow


def _procfile_web(port: int) -> list[str]:
    line = next(line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith("web:"))
    command = shlex.split(line.removeprefix("web:"), comments=True)
    assert command[0] == "gunicorn"
    return [sys.executable, "-m", *command, "--bind", f"127.0.0.1:{port}"]


def _answering(port: int) -> bool:
    """The worker has loaded the app: the master listening is not enough, as a request
    that waits in the backlog when SIGTERM comes is never read."""
    try:
        return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
    except requests.RequestException:
        return False


def _children(pid: int) -> list[int]:
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended while we looked
            continue
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return children


def _a_request_waits_for_the_lock(database_url: str, gunicorn_pid: int) -> bool:
    """A request is blocked on the held lock: on SQLite a gunicorn worker sleeps in SQLite's busy
    handler (an idle gevent worker waits in epoll instead); on PostgreSQL a lock is not granted."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        wchans = []
        for pid in _children(gunicorn_pid):
            try:
                wchans.append((Path("/proc") / str(pid) / "wchan").read_text())
            except OSError:
                continue
        return any("nanosleep" in wchan for wchan in wchans)
    engine = create_engine(url.set(drivername="postgresql+psycopg"))
    try:
        with engine.connect() as conn:
            waiting = conn.execute(
                text(
                    "SELECT count(*) FROM pg_locks"
                    " WHERE NOT granted AND relation = 'learning_paths'::regclass"
                )
            ).scalar_one()
    finally:
        engine.dispose()
    return waiting > 0


@contextmanager
def _paths_table_locked(database_url: str) -> Iterator[None]:
    """Hold the database so an insert into learning_paths waits: the request stays in flight."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        conn = sqlite3.connect(Path(url.database), isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")
            conn.close()
        return
    engine = create_engine(url.set(drivername="postgresql+psycopg"))
    with engine.connect() as conn, conn.begin():
        conn.execute(text("LOCK TABLE learning_paths IN EXCLUSIVE MODE"))
        yield
    engine.dispose()


def test_sigterm_lets_the_request_in_flight_finish_before_the_web_process_exits(
    app, auth, service_env, database_url, tmp_path
):
    port = free_port()
    web = ProcessGroup(_procfile_web(port), service_env, tmp_path / "web.log")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _answering(port), timeout=30, message="gunicorn to answer")
        answer: dict[str, requests.Response] = {}

        def create_path() -> None:
            answer["response"] = requests.post(
                f"{base}/api/learning-paths",
                json={"name": "Written during shutdown", "topic": "statistics"},
                headers=auth,
                timeout=60,
            )

        with _paths_table_locked(database_url):
            request = threading.Thread(target=create_path)
            request.start()
            wait_until(
                lambda: _a_request_waits_for_the_lock(database_url, web.pid),
                timeout=30,
                message="the request to reach its insert and wait for the lock",
            )
            web.process.send_signal(signal.SIGTERM)
            time.sleep(1.5)  # the behaviour under test: nothing ends while the request is in hand
            assert web.alive(), "gunicorn must wait for the request in hand"
            assert "response" not in answer
        request.join(timeout=30)

        assert answer["response"].status_code == 201, answer["response"].text
        assert web.process.wait(timeout=25) == 0
        with app.app_context():
            assert db.session.scalars(select(LearningPath.name)).all() == ["Written during shutdown"]
    finally:
        web.stop()
