"""Pages live by push, measured in headless Chromium against the Procfile's `web` command, beside
the 3 s poll they replace (the same page with its stream blocked, as a proxy that refuses it).

- commit to page: for each event of a running build, from its row's commit (created_at) to the
  moment the build page's activity log shows it (a MutationObserver's clock, the same host's);
- a page watching a build that waits on the rate limit (processing, nothing changing) for
  WATCH_S: the requests it makes besides its stream.
"""

from __future__ import annotations

import time
from datetime import UTC
from typing import Any

from playwright.sync_api import Page, sync_playwright
from sqlalchemy import select

from app.extensions import db
from app.models import BuildEvent
from bench.harness import Deployment, deployment, percentile, start_path_build, wait_build
from bench.sse import _procfile_web, _start_web
from tests.helpers.browser import CHROMIUM, CHROMIUM_ARGS

OBSERVE = """() => {
  window.__shown = {}
  const note = () => document.querySelectorAll('[data-event-id]').forEach((li) => {
    window.__shown[li.dataset.eventId] ??= Date.now()
  })
  note()
  new MutationObserver(note).observe(document.body, {childList: true, subtree: true})
}"""


def _sign_in(page: Page, base: str) -> None:
    page.goto(f"{base}/sign-in")
    page.fill("#email", "bench@example.com")
    page.fill("#password", "bench")
    page.click("button:has-text('Sign in')")
    page.wait_for_url(f"{base}/")


def _path_of(run: Deployment, build_id: str) -> str:
    return run.app.test_client().get(f"/api/jobs/{build_id}", headers=run.auth).get_json()["pathId"]


def _latencies_ms(run: Deployment, page: Page, base: str, concepts: int) -> list[float]:
    """Every event's commit-to-page time; the build runs only once the page watches it."""
    build_id = start_path_build(run, concepts, name="Latency")
    page.goto(f"{base}/paths/{_path_of(run, build_id)}")
    page.wait_for_load_state("load")
    before = set(
        page.evaluate("[...document.querySelectorAll('[data-event-id]')].map((li) => li.dataset.eventId)")
    )
    page.evaluate(OBSERVE)
    worker = run.worker()
    wait_build(run.app.test_client(), run.auth, build_id, timeout=600)
    page.wait_for_selector("#panel:not([hx-trigger])", state="attached", timeout=30_000)
    shown = page.evaluate("window.__shown")
    with run.app.app_context():
        events = db.session.execute(
            select(BuildEvent.id, BuildEvent.created_at).where(BuildEvent.build_id == build_id)
        ).all()
    committed = {str(i): at.replace(tzinfo=UTC).timestamp() * 1000 for i, at in events}
    worker.stop()
    return [shown[i] - committed[i] for i in shown if i in committed and i not in before]


def _requests_while_waiting(run: Deployment, page: Page, base: str, watch_s: float) -> list[str]:
    build_id = start_path_build(run, 3, name="Waiting on the rate limit")
    client = run.app.test_client()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # until a step waits for the limit's next slot
        steps = client.get(f"/api/jobs/{build_id}/steps", headers=run.auth).get_json()["data"]
        if any(step["waitingForRateLimit"] for step in steps):
            break
        time.sleep(0.2)
    page.goto(f"{base}/paths/{_path_of(run, build_id)}")
    page.wait_for_load_state("load")
    made: list[str] = []
    page.on("request", lambda request: "/stream" not in request.url and made.append(request.url))
    page.wait_for_timeout(watch_s * 1000)
    return made


RATE_LIMITED = {"JOB_RATE_LIMIT_MAX": 1, "JOB_RATE_LIMIT_DURATION": 600_000}  # the 2nd call waits 10 min


def _phase(run: Deployment, base: str, push: bool, concepts: int, watch_s: float) -> dict[str, Any]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_context().new_page()
        if not push:  # as a proxy that refuses the stream: the page falls back to its poll
            page.route("**/stream*", lambda route: route.abort())
        _sign_in(page, base)
        latencies = _latencies_ms(run, page, base, concepts)
        run.worker(**RATE_LIMITED)
        waiting = _requests_while_waiting(run, page, base, watch_s)
        browser.close()
    return {
        "events_timed": len(latencies),
        "commit_to_page_ms": {
            "p50": round(percentile(latencies, 0.5)),
            "p95": round(percentile(latencies, 0.95)),
            "max": round(max(latencies)),
        },
        "requests_while_waiting_on_rate_limit": len(waiting),
        "those_requests": sorted({url.split("?")[0].removeprefix(base) for url in waiting}),
        "watched_s": watch_s,
    }


def push_pages(quick: bool) -> dict[str, Any]:
    """Push (the pages as served) beside the 3 s poll (the same pages with the stream blocked)."""
    concepts, watch_s = (2, 20.0) if quick else (4, 60.0)
    results: dict[str, Any] = {}
    for mode in ("push", "poll"):
        # A build of several seconds (many polls), and the pages' default 3 s poll (the harness sets 1 s).
        with deployment(GENERATOR_LATENCY_MS=600, POLL_INTERVAL_S=3) as run:
            _, port = _start_web(run, _procfile_web(), mode)
            results[mode] = _phase(run, f"http://127.0.0.1:{port}", mode == "push", concepts, watch_s)
    results["targets"] = {"commit_to_page_p95_ms": 500, "requests_while_waiting_on_rate_limit": 2}
    return results
