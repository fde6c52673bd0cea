"""Pages live by push, in headless Chromium against the Procfile's gevent web process: a page's
own EventSource with the sign-in session, pages that update by the stream and do not poll while
it is open, the poll taking over when the stream is refused, nothing listening once the work is
final, and another site's page unable to read a signed-in user's stream."""

from __future__ import annotations

import functools
import http.server
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Page, expect

from app.jobs.queues import get_redis
from app.models import User
from app.pipelines.stream_slots import open_streams
from tests.helpers import create_path, create_workflow, start_build
from tests.helpers.browser import sign_in
from tests.helpers.streams import EventReader
from tests.helpers.users import make_user
from tests.services import free_port, wait_until

pytestmark = pytest.mark.slow

# The fixtures of the browser tests and of the stream tests (the Procfile's gevent web command).

EMAIL = "ada@example.com"


def _user_id(app, email: str = EMAIL) -> int:  # type: ignore[no-untyped-def]
    with app.app_context():
        return User.query.filter_by(email=email).one().id


def _paused_build(client, auth) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    """A path and its build, paused before any worker runs it."""
    path_id = create_path(client, auth, concepts=2)
    build_id = start_build(client, auth, path_id)
    assert client.post(f"/api/jobs/{build_id}/pause", headers=auth).status_code == 200
    return path_id, build_id


def _page_requests(page: Page, pattern: str) -> list[str]:
    """URLs the page asks for that match `pattern`, recorded from now on."""
    seen: list[str] = []
    page.on("request", lambda request: re.search(pattern, request.url) and seen.append(request.url))
    return seen


def test_an_event_source_opened_by_a_signed_in_page_receives_progress_and_completed(
    app, client, workers, page, procfile_web
):
    base = procfile_web()
    auth = make_user(app, EMAIL)
    workers(GENERATOR_LATENCY_MS="100")
    sign_in(page, base, EMAIL)
    build_id = start_build(client, auth, create_path(client, auth, concepts=2))

    seen = page.evaluate(
        """(url) => new Promise((resolve) => {
            const source = new EventSource(url), seen = []
            for (const type of ['progress', 'error', 'completed']) {
              source.addEventListener(type, () => {
                seen.push(type)
                if (type === 'completed') { source.close(); resolve(seen) }
              })
            }
            source.onerror = () => { if (source.readyState === EventSource.CLOSED) resolve(seen) }
        })""",
        f"/api/jobs/{build_id}/stream",
    )

    assert "progress" in seen and seen[-1] == "completed"


def test_a_build_page_updates_by_push_and_does_not_poll_while_the_stream_is_open(
    app, client, workers, page, procfile_web
):
    base = procfile_web(POLL_INTERVAL_S="0.5")
    auth = make_user(app, EMAIL)
    sign_in(page, base, EMAIL)
    path_id, build_id = _paused_build(client, auth)
    page.goto(f"{base}/paths/{path_id}")
    expect(page.locator("#build-push.push-live")).to_have_count(1)

    panel_requests = _page_requests(page, rf"/paths/{path_id}$|/paths/{path_id}\?")
    page.wait_for_timeout(3000)  # six polls' worth
    assert panel_requests == [], "a page with its stream open must not poll"

    workers(GENERATOR_LATENCY_MS="100")
    assert client.post(f"/api/jobs/{build_id}/resume", headers=auth).status_code == 200
    expect(page.locator("#percent")).to_have_text("100%", timeout=60_000)
    expect(page.locator("#panel .badge")).to_have_text("completed")
    assert panel_requests, "the panel was re-rendered on the stream's events"

    # Once final nothing listens: the stream is closed and the panel no longer polls.
    expect(page.locator("#build-push.push-live")).to_have_count(0)
    after_final = _page_requests(page, rf"/paths/{path_id}|/api/jobs/{build_id}/stream")
    page.wait_for_timeout(2000)
    assert after_final == []
    wait_until(lambda: open_streams(_redis(app), _user_id(app)) == 0, timeout=10, message="the slot freed")


def _redis(app):  # type: ignore[no-untyped-def]
    with app.app_context():
        return get_redis()


def test_a_page_whose_stream_is_refused_by_the_cap_polls_and_still_reaches_100(
    app, client, workers, page, procfile_web
):
    base = procfile_web(POLL_INTERVAL_S="0.5", SSE_MAX_STREAMS_PER_USER="1")
    auth = make_user(app, EMAIL)
    sign_in(page, base, EMAIL)
    path_id, build_id = _paused_build(client, auth)
    held = EventReader(
        requests.get(f"{base}/api/jobs/{build_id}/stream", headers=auth, stream=True, timeout=10)
    )
    streams: list[int] = []
    page.on("response", lambda r: "/stream" in r.url and streams.append(r.status))
    polls = _page_requests(page, rf"/paths/{path_id}$")

    with page.expect_response(lambda r: "/stream" in r.url) as first:
        page.goto(f"{base}/paths/{path_id}")
    assert first.value.status == 429
    workers(GENERATOR_LATENCY_MS="100")
    assert client.post(f"/api/jobs/{build_id}/resume", headers=auth).status_code == 200

    expect(page.locator("#percent")).to_have_text("100%", timeout=60_000)
    assert len(polls) >= 2, "the panel was kept live by polling"
    assert streams == [429], "a refused stream is not tried again: the page polls"
    held.close()


@pytest.fixture
def other_site(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A plain HTTP server on another port: a page of another origin (same host, so same site)."""
    root = tmp_path / "other-site"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root
    server.shutdown()
    server.server_close()


def test_a_page_of_another_site_cannot_read_a_signed_in_users_stream(
    app, client, page, procfile_web, other_site
):
    base = procfile_web(SSE_KEEPALIVE_S="5")
    auth = make_user(app, EMAIL)
    sign_in(page, base, EMAIL)  # the browser holds the victim's session cookie
    _, build_id = _paused_build(client, auth)
    origin, root = other_site
    (root / "read.html").write_text(
        f"""<!doctype html><script>
        window.result = null
        const source = new EventSource('{base}/api/jobs/{build_id}/stream', {{withCredentials: true}})
        let messages = 0
        for (const type of ['progress', 'completed']) source.addEventListener(type, () => messages++)
        source.onerror = () => {{ window.result = {{messages, state: source.readyState}}; source.close() }}
        </script>"""
    )
    statuses = []
    page.on("response", lambda r: "/stream" in r.url and statuses.append(r.status))

    page.goto(f"{origin}/read.html")
    page.wait_for_function("window.result !== null")

    assert page.evaluate("window.result") == {"messages": 0, "state": 2}
    # The server refused it outright: no stream was opened to hold one of the user's slots.
    assert open_streams(_redis(app), _user_id(app)) == 0
    assert statuses in ([], [403])


def test_a_workflow_page_follows_generation_started_on_it_by_push(app, client, workers, page, procfile_web):
    base = procfile_web(POLL_INTERVAL_S="600")  # only the stream can bring the changes
    auth = make_user(app, EMAIL)
    workers(GENERATOR_LATENCY_MS="300")
    sign_in(page, base, EMAIL)
    workflow_id = create_workflow(client, auth, modules=3)
    page.goto(f"{base}/workflows/{workflow_id}")
    page.wait_for_load_state("load")

    page.click("button:has-text('Generate lesson plans')")
    expect(page.locator("#run-push.push-live")).to_have_count(1)
    expect(page.locator("#lessons-2 .lessons li").first).to_be_visible(timeout=60_000)
    expect(page.locator("#progress .badge").first).to_have_text("completed", timeout=20_000)
    expect(page.locator("#run-push.push-live")).to_have_count(0)


def test_the_admin_queue_updates_by_its_one_stream(app, client, page, procfile_web):
    base = procfile_web(POLL_INTERVAL_S="600")  # only the stream can bring the changes
    auth = make_user(app, "designer@example.com")
    make_user(app, EMAIL, admin=True)
    sign_in(page, base, EMAIL)
    streams = _page_requests(page, r"/stream")
    page.goto(f"{base}/admin/jobs")
    expect(page.locator("#queue-push.push-live")).to_have_count(1)
    expect(page.locator("#queue-live")).to_contain_text("Nothing matches.")

    for _ in range(3):
        start_build(client, auth, create_path(client, auth, concepts=1))

    expect(page.locator("#queue-live table.list tbody tr")).to_have_count(3)
    expect(page.locator("#queue-live .stat").first).to_have_text(re.compile(r"^\s*3\s*Active"))
    assert streams == [f"{base}/api/admin/queue/stream"], "one stream for the page, not one per row"
