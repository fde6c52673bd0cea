"""`python -m bench.panel_cost`: the CPU one request for a build page's live panel costs in
process (Flask's test client: no sockets, no gunicorn), beside `/healthz` and a signed-in page
of no data (the account page) measured the same way. What a page watching a build costs the web
tier per event is about this plus its stream's read and the server's own handling.

Prints the best and median of five rounds of 500 requests each, in ms of process CPU.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from flask.testing import FlaskClient

ROUNDS, REQUESTS = 5, 500


def _cpu_ms(client: FlaskClient, url: str, headers: dict[str, str] | None = None) -> tuple[float, float]:
    for _ in range(20):  # warm: statement caches, templates
        client.get(url, headers=headers)
    rounds = []
    for _ in range(ROUNDS):
        started = time.process_time()
        for _ in range(REQUESTS):
            answer = client.get(url, headers=headers)
        assert answer.status_code == 200, (url, answer.status_code)
        rounds.append((time.process_time() - started) / REQUESTS * 1000)
    rounds.sort()
    return round(rounds[0], 2), round(rounds[len(rounds) // 2], 2)


def main() -> None:
    from tests.helpers import create_path, start_build
    from tests.helpers.users import PASSWORD, make_user
    from tests.helpers.web import csrf_token
    from tests.services import RedisServer

    root = Path(tempfile.mkdtemp(prefix="cb-panel-"))
    redis = RedisServer(root / "redis")
    redis.start()
    try:
        os.environ.update(
            REDIS_URL=redis.url,
            DATABASE_URL=f"sqlite:///{root / 'panel.db'}",
            SECRET_KEY="panel-cost-" + "x" * 32,
            LOG_LEVEL="WARNING",
        )
        from flask_migrate import upgrade

        from app import create_app

        app = create_app()
        with app.app_context():
            upgrade()
        client = app.test_client()
        headers = make_user(app, "ada@example.com")
        signed_in = client.post(
            "/sign-in",
            data={"email": "ada@example.com", "password": PASSWORD, "csrf_token": csrf_token(client)},
        )
        assert signed_in.status_code == 302, signed_in.status_code
        path_id = create_path(client, headers, concepts=30)
        start_build(client, headers, path_id)  # no worker: it stays processing, its panel live
        figures = {
            "healthz": _cpu_ms(client, "/healthz"),
            "account page": _cpu_ms(client, "/account"),
            "build panel (HTMX)": _cpu_ms(client, f"/paths/{path_id}", {"HX-Request": "true"}),
        }
        for name, (best, median) in figures.items():
            print(f"{name:20} best {best:5.2f} ms   median {median:5.2f} ms CPU a request")
        print(f"panel ÷ healthz (best): {figures['build panel (HTMX)'][0] / figures['healthz'][0]:.1f}")
    finally:
        redis.stop()


if __name__ == "__main__":
    main()
