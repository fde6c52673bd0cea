"""Every page at a phone's width (390 px) and a laptop's (1280 px) in headless Chromium: no
horizontal page scroll, even with a 200-character unbroken title; and every error page a person
can meet is styled inside the layout. Screenshots go to test-artifacts/ (see test_browser.py)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select
from werkzeug.serving import make_server

from app.extensions import db
from app.models import BuildStep, Concept, WorkStatus
from tests.helpers import create_path, create_workflow, start_build, wait_for_build, wait_for_status
from tests.helpers.apps import boom_app
from tests.helpers.browser import shot, sign_in
from tests.helpers.users import make_user
from tests.services import free_port

pytestmark = pytest.mark.slow

LONG_TITLE = "Pharmacokinetics" * 12 + "ABCDEFGH"  # 200 characters, no break
WIDTHS = (390, 1280)


def _fits(page: Page) -> tuple[int, int]:
    return page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")


def _open(browser: Browser, width: int) -> Page:  # noqa: F811
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20_000)
    return page


# Per visible table on the page: [its scroll width, the width its box shows, its rows, and, if it
# is shown stacked (a row a block), what goes before each of its cells but whole-row messages].
TABLES_JS = """[...document.querySelectorAll('table')].filter(t => t.offsetParent !== null).map(t => {
  const box = t.closest('.table-wrap, .table-responsive') || t.parentElement;
  const rows = [...t.querySelectorAll('tbody tr')];
  const stacked = rows.length > 0 && getComputedStyle(rows[0]).display === 'block';
  const labels = stacked ? [...t.querySelectorAll('tbody td:not([colspan])')]
    .map(td => getComputedStyle(td, '::before').content) : [];
  return [box.scrollWidth, box.clientWidth, rows.length, labels];
})"""
# rq-dashboard fills its tables from JSON after the page loads.
RQ_DASHBOARD_PAGES = ("rq-queues", "rq-workers", "rq-jobs", "rq-job")


def _assert_fits_at_every_width(page: Page, url: str, name: str) -> None:
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        response = page.goto(url)
        assert response is not None and response.ok, (url, response and response.status)
        if name in RQ_DASHBOARD_PAGES:
            page.wait_for_load_state("networkidle")
        page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")  # all of it
        scroll, inner = _fits(page)
        assert scroll <= inner, (
            f"{url} at {width} px scrolls sideways: {scroll} > {inner}, {_sticking_out(page)}"
        )
        if width == WIDTHS[0]:
            shot(page, f"narrow-{name}")
            _assert_tables_read_without_sideways_scroll(page, url)


def _sticking_out(page: Page) -> list[str]:
    """The first elements whose right edge is past the window's: what to fix."""
    return page.evaluate(
        "[...document.querySelectorAll('body *')]"
        ".filter(e => e.getBoundingClientRect().right > window.innerWidth + 0.5).slice(0, 6)"
        ".map(e => [e.tagName, e.id, e.className, Math.round(e.getBoundingClientRect().right)].join(' '))"
    )


def _assert_tables_read_without_sideways_scroll(page: Page, url: str) -> None:
    """Each table is read on a phone without scrolling it sideways; a stacked one names the column
    of each of its cells."""
    for scroll, shown, rows, labels in page.evaluate(TABLES_JS):
        assert rows and scroll <= shown, f"a table of {url} scrolls sideways at 390 px: {scroll} > {shown}"
        assert all(label not in ("none", "normal", '""') for label in labels), (url, labels)


def _pieces(app, path_id: str) -> tuple[int, int, str]:  # type: ignore[no-untyped-def]
    """The path's first concept and its first sub-concept, and the RQ job id of a failed step."""
    with app.app_context():
        concept = db.session.scalar(
            select(Concept).where(Concept.path_id == path_id).order_by(Concept.position)
        )
        failed = db.session.scalar(select(BuildStep.id).where(BuildStep.status == WorkStatus.FAILED))
        return concept.id, concept.sub_concepts[0].id, f"step-{failed}"


def test_every_page_a_user_or_an_admin_reaches_fits_a_phone_and_a_laptop(app, client, web, workers, browser):  # noqa: F811
    """With a 200-character unbroken title, every page and every table on it, at 390 and 1280 px."""
    designer = make_user(app, "designer@example.com")
    make_user(app, "root@example.com", admin=True)
    workers(GENERATOR_FAIL_ON="Pitfalls")  # some sub-concepts fail: dead letters and a failed build
    workflow_id = create_workflow(client, designer, modules=2, title=LONG_TITLE, audience=LONG_TITLE)
    assert client.post(f"/api/v3/workflow/{workflow_id}/step10", headers=designer).status_code == 202
    path_id = create_path(client, designer, concepts=2, name=LONG_TITLE, topic="statistics")
    build_id = start_build(client, designer, path_id)
    wait_for_status(client, designer, workflow_id, "complete", timeout=90)
    wait_for_build(client, designer, build_id, "completed", "failed", timeout=120)
    concept_id, sub_concept_id, failed_job = _pieces(app, path_id)

    page = _open(browser, WIDTHS[0])
    _assert_fits_at_every_width(page, f"{web}/sign-in", "sign-in")
    sign_in(page, web, "designer@example.com")
    user_pages = {
        "home": "/",
        "workflow": f"/workflows/{workflow_id}",
        "path": f"/paths/{path_id}",
        "account": "/account",
        "regenerate-lessons": f"/workflows/{workflow_id}/regenerate",
        "regenerate-module": f"/workflows/{workflow_id}/regenerate?module=1",
        "regenerate-path": f"/paths/{path_id}/regenerate",
        "regenerate-concept": f"/paths/{path_id}/regenerate?concept={concept_id}",
        "regenerate-sub-concept": f"/paths/{path_id}/regenerate?sub_concept={sub_concept_id}",
    }
    for name, url in user_pages.items():
        _assert_fits_at_every_width(page, f"{web}{url}", name)
    page.goto(f"{web}/workflows/{workflow_id}")
    markers = page.evaluate(
        "[...document.querySelectorAll('#progress .modules > li')]"
        ".map(li => getComputedStyle(li).listStyleType)"
    )
    assert markers == ["none", "none"], "modules say 'Module 1: …' themselves: no list number before it"
    expect(page.locator("#progress .modules > li").first).to_contain_text("Module 1: ")
    page.context.close()

    page = _open(browser, WIDTHS[0])
    sign_in(page, web, "root@example.com")
    # /admin/ is the queue's own view too. Each visit to the queue leaves its event stream holding
    # one of gunicorn's four sync workers until the next keep-alive finds the tab gone: one visit.
    admin_pages = {
        "admin-queue": "/admin/jobs",
        "admin-build": f"/admin/builds/{build_id}",
        "dead-letters": "/admin/dead-letters",
        "workers": "/admin/workers",
        "rq-queues": "/admin/rq/",
        "rq-workers": "/admin/rq/0/view/workers",
        "rq-jobs": "/admin/rq/0/view/jobs",
        "rq-job": f"/admin/rq/0/view/job/{failed_job}",
        "admin-home-page": "/",
        "admin-workflow": f"/workflows/{workflow_id}",
        "admin-path": f"/paths/{path_id}",
    }
    for name, url in admin_pages.items():
        _assert_fits_at_every_width(page, f"{web}{url}", name)
    page.context.close()


@pytest.fixture
def boom_server(service_env) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """The real app under Werkzeug's server, as in production but with one route that fails."""
    server = make_server("127.0.0.1", free_port(), boom_app(), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def _assert_styled_error(page: Page, status: int, heading: str) -> None:
    expect(page.locator("main h1")).to_have_text(heading)
    expect(page.locator("header.top .brand")).to_be_visible()
    expect(page.locator(".error-page")).to_contain_text(f"Error {status}")
    styled = page.evaluate(
        "getComputedStyle(document.querySelector('.error-page')).borderRadius !== '0px'"
        " && getComputedStyle(document.body).backgroundColor === 'rgb(245, 246, 250)'"
    )
    assert styled, "our stylesheet applies"
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        scroll, inner = _fits(page)
        assert scroll <= inner, (status, width)


def test_every_error_page_is_styled_in_the_browser(app, web, boom_server, redis_server, browser):  # noqa: F811
    make_user(app, "ada@example.com")
    make_user(app, "root@example.com", admin=True)
    page = _open(browser, 1280)

    assert page.goto(f"{web}/no-such-page").status == 404
    _assert_styled_error(page, 404, "Page not found")
    shot(page, "error-404")
    assert page.goto(f"{web}/workflows").status == 405
    _assert_styled_error(page, 405, "Not that way")

    sign_in(page, web, "ada@example.com")
    assert page.goto(f"{web}/admin/").status == 403
    _assert_styled_error(page, 403, "Not allowed")

    page.goto(f"{web}/")
    page.fill("#workflow-title", "Too much")
    page.fill("#workflow-topic", "t")
    page.evaluate("document.querySelector('#workflow-modules').value = 'x'.repeat(300 * 1024)")
    with page.expect_navigation():
        page.click("button:has-text('Create workflow')")
    _assert_styled_error(page, 413, "Too much at once")

    page.goto(f"{web}/")
    page.fill("#workflow-title", "Expired form")
    page.evaluate("document.querySelectorAll('input[name$=csrf_token]').forEach(i => i.value = 'stale')")
    with page.expect_navigation():
        page.click("button:has-text('Create workflow')")
    _assert_styled_error(page, 400, "That request could not be used")

    assert page.goto(f"{boom_server}/boom").status == 500
    _assert_styled_error(page, 500, "Something went wrong on our side")
    shot(page, "error-500")
    page.context.close()

    page = _open(browser, 1280)
    sign_in(page, web, "root@example.com")
    redis_server.stop()
    try:
        assert page.goto(f"{web}/admin/rq/").status == 503
        _assert_styled_error(page, 503, "Unavailable for a moment")
        expect(page.locator(".error-page")).to_contain_text("job queue (Redis) is not answering")
        shot(page, "error-503")
    finally:
        redis_server.start()
    page.context.close()
