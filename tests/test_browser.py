"""The pages in headless Chromium (Debian's, driven by Playwright) against gunicorn and a real
worker: what a person does, seen as they see it. Each test saves a screenshot under
test-artifacts/ (and, with UPDATE_DOCS_SCREENSHOTS=1, the README's images under docs/images/)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.helpers.browser import create_path, shot, sign_in
from tests.helpers.users import make_user

pytestmark = pytest.mark.slow


def test_build_a_path_and_watch_it_finish_without_reloading(app, web, workers, page):
    make_user(app, "ada@example.com")
    workers(GENERATOR_LATENCY_MS="150")
    sign_in(page, web, "ada@example.com")
    create_path(page, "Statistics for nurses", 3)
    page.evaluate("window.__sameDocument = true")

    page.click("button:has-text('Build learning path')")
    expect(page.locator("#panel .badge")).to_have_text(re.compile("processing|completed"))
    shot(page, "build-running")
    expect(page.locator("#percent")).to_have_text("100%", timeout=60_000)
    expect(page.locator("#tree")).to_contain_text("Foundations of statistics", timeout=10_000)

    assert page.evaluate("window.__sameDocument") is True, "the page was reloaded"
    expect(page.locator("#panel .badge")).to_have_text("completed")
    shot(page, "build-completed")


def test_cancel_then_retry_from_the_page(app, web, workers, page):
    make_user(app, "ada@example.com")
    workers(GENERATOR_LATENCY_MS="800")
    sign_in(page, web, "ada@example.com")
    create_path(page, "Cancel me", 3)
    page.click("button:has-text('Build learning path')")
    expect(page.locator("#panel .badge")).to_have_text("processing")

    page.click("#panel button:has-text('Cancel')")
    expect(page.locator("#panel .badge")).to_have_text("cancelled")
    expect(page.locator("#panel button:has-text('Retry')")).to_be_visible()
    shot(page, "build-cancelled")
    page.click("#panel button:has-text('Retry')")

    expect(page.locator("#percent")).to_have_text("100%", timeout=90_000)
    expect(page.locator("#panel .badge")).to_have_text("completed")


def test_a_non_admin_is_refused_the_admin_pages(app, web, page):
    make_user(app, "ada@example.com")
    sign_in(page, web, "ada@example.com")

    for url in ("/admin/", "/admin/rq/"):
        response = page.goto(f"{web}{url}")
        assert response is not None and response.status == 403, url
    shot(page, "admin-refused")


def test_form_errors_appear_beside_their_fields(app, web, page):
    make_user(app, "ada@example.com")
    sign_in(page, web, "ada@example.com")

    page.fill("#workflow-title", "Data literacy")
    page.fill("#workflow-modules", "Charts | many")
    page.click("button:has-text('Create workflow')")

    topic = page.locator(".field:has(#workflow-topic)")
    modules = page.locator(".field:has(#workflow-modules)")
    expect(topic.locator(".error")).to_have_text("This field is required.")
    expect(modules.locator(".error")).to_contain_text("“many” is not a number of hours")
    expect(page.locator(".field:has(#workflow-title) .error")).to_have_count(0)
    shot(page, "form-errors")


def test_an_admin_sees_the_queue_and_a_builds_timeline(app, web, workers, page, client):
    make_user(app, "root@example.com", admin=True)
    workers(GENERATOR_LATENCY_MS="100")
    sign_in(page, web, "root@example.com")
    create_path(page, "Timeline demo", 4)
    page.click("button:has-text('Build learning path')")
    expect(page.locator("#percent")).to_have_text("100%", timeout=60_000)

    page.goto(f"{web}/admin/jobs")
    expect(page.locator(".stat").first).to_contain_text("Active")
    expect(page.locator("table.list")).to_contain_text("Timeline demo")
    shot(page, "admin-queue")
    page.click("table.list a:has-text('View')")
    expect(page.locator("svg.timeline rect").first).to_be_visible()
    assert page.locator("svg.timeline rect").count() >= 4
    shot(page, "admin-build")


def test_lesson_plans_appear_module_by_module_without_reloading(app, web, workers, page):
    make_user(app, "ada@example.com")
    workers(GENERATOR_LATENCY_MS="400")
    sign_in(page, web, "ada@example.com")
    page.fill("#workflow-title", "Data literacy")
    page.fill("#workflow-topic", "data")
    page.fill("#workflow-modules", "Charts | 1\nTables | 1\nAverages | 1")
    page.click("button:has-text('Create workflow')")
    page.evaluate("window.__sameDocument = true")

    page.click("button:has-text('Generate lesson plans')")
    expect(page.locator("#lessons-0 .lessons li").first).to_be_visible(timeout=60_000)
    expect(page.locator("#lessons-2 .lessons li").first).to_be_visible(timeout=60_000)
    expect(page.locator("#progress .badge").first).to_have_text("completed", timeout=20_000)

    assert page.evaluate("window.__sameDocument") is True, "the page was reloaded"
    for position in range(3):
        assert page.locator(f"#lessons-{position} .lessons > li").count() >= 1
    assert page.locator("#progress .lessons").count() == 0, "the polled region holds no lesson plan"
    shot(page, "workflow-lessons")
