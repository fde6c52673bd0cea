"""`python -m bench.panel_cost`: the CPU one request for a build page's live panel costs in
process (Flask's test client: no sockets, no gunicorn), beside `/healthz` and a signed-in page
of no data (the account page) measured the same way. What a page watching a build costs the web
tier per event is about this plus its stream's read and the server's own handling.

Prints the best and median of five rounds of 500 requests each, in ms of process CPU.
"""

from __future__ import annotations

import time

from flask.testing import FlaskClient

from bench.harness import BENCH_EMAIL, BENCH_PASSWORD, deployment, start_path_build
from tests.helpers.web import csrf_token

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
    with deployment() as run:  # no worker: the build stays processing, its panel live
        client = run.app.test_client()
        signed_in = client.post(
            "/sign-in",
            data={"email": BENCH_EMAIL, "password": BENCH_PASSWORD, "csrf_token": csrf_token(client)},
        )
        assert signed_in.status_code == 302, signed_in.status_code
        build_id = start_path_build(run, concepts=30)
        path_id = client.get(f"/api/jobs/{build_id}", headers=run.auth).get_json()["pathId"]
        figures = {
            "healthz": _cpu_ms(client, "/healthz"),
            "account page": _cpu_ms(client, "/account"),
            "build panel (HTMX)": _cpu_ms(client, f"/paths/{path_id}", {"HX-Request": "true"}),
        }
    for name, (best, median) in figures.items():
        print(f"{name:20} best {best:5.2f} ms   median {median:5.2f} ms CPU a request")
    print(f"panel ÷ healthz (best): {figures['build panel (HTMX)'][0] / figures['healthz'][0]:.1f}")


if __name__ == "__main__":
    main()
