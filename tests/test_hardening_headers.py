"""Security headers on every answer, `Vary: HX-Request` on pages and fragments, and a strict
Content-Security-Policy that the pages (HTMX) and the mounted rq-dashboard still work under,
proven in Chromium: no CSP violation, and the live parts update."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest
from flask import Flask
from flask.testing import FlaskClient
from playwright.sync_api import ConsoleMessage, Page, expect

from app.security import APP_POLICY
from tests.helpers import create_path
from tests.helpers.browser import create_path as create_path_in_page
from tests.helpers.browser import sign_in
from tests.helpers.users import make_user
from tests.helpers.web import sign_in as sign_in_client

REPORT_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) =>
  window.__cspViolations.push(`${e.violatedDirective} blocked ${e.blockedURI} on ${location.pathname}`));
"""
SECURITY_HEADERS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def _directives(policy: str) -> dict[str, list[str]]:
    return {name: values for name, *values in (part.split() for part in policy.split(";") if part.strip())}


def _assert_secured(response, url: str) -> None:  # type: ignore[no-untyped-def]
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, f"{url}: {name}"
    policy = _directives(response.headers.get("Content-Security-Policy", ""))
    assert policy.get("script-src") == ["'self'"], url
    assert policy.get("frame-ancestors") == ["'none'"], url
    assert policy.get("object-src") == ["'none'"], url


def test_pages_api_health_and_static_files_carry_the_security_headers(
    app: Flask, client: FlaskClient, auth: dict[str, str]
) -> None:
    for url in ("/sign-in", "/healthz", "/static/app.css", "/api/jobs", "/api/jobs/nope"):
        _assert_secured(client.get(url, headers=auth), url)
    sign_in_client(app, client, "ada@example.com")
    for url in ("/", "/workflows/nope"):
        _assert_secured(client.get(url), url)


def test_a_page_and_its_fragment_vary_on_hx_request(
    app: Flask, client: FlaskClient, auth: dict[str, str]
) -> None:
    sign_in_client(app, client, "designer2@example.com", admin=True)
    path_id = create_path(client, auth)
    whole = client.get(f"/paths/{path_id}")
    fragment = client.get(f"/paths/{path_id}", headers={"HX-Request": "true"})
    assert whole.status_code == fragment.status_code == 200
    assert whole.get_data() != fragment.get_data()
    for response in (whole, fragment, client.get("/")):
        assert "HX-Request" in response.headers.get("Vary", ""), response.headers


def test_json_answers_do_not_vary_on_hx_request(client: FlaskClient, auth: dict[str, str]) -> None:
    assert "HX-Request" not in client.get("/api/jobs", headers=auth).headers.get("Vary", "")


def test_rq_dashboard_pages_allow_exactly_their_own_inline_script(app: Flask, client: FlaskClient) -> None:
    sign_in_client(app, client, "root@example.com", admin=True)
    response = client.get("/admin/rq/")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    script_src = _directives(response.headers["Content-Security-Policy"])["script-src"]
    assert "'unsafe-inline'" not in script_src
    inline = re.findall(r"<script type=\"text/javascript\">(.*?)</script>", html, re.DOTALL)
    assert inline, "rq-dashboard's page has its inline script"
    for script in inline:
        digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in script_src
    assert _directives(response.headers["Content-Security-Policy"])["frame-ancestors"] == ["'none'"]


def test_the_apps_own_policy_allows_no_inline_or_eval_script() -> None:
    script_src = _directives(APP_POLICY)["script-src"]
    assert script_src == ["'self'"]


@pytest.mark.slow
def test_pages_and_rq_dashboard_work_in_chromium_with_no_csp_violation(  # noqa: F811
    app: Flask,
    web: str,
    workers,  # type: ignore[no-untyped-def]
    page: Page,  # noqa: F811
) -> None:
    problems: list[str] = []

    def watch(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text or "Refused to" in message.text:
            problems.append(message.text)

    page.on("console", watch)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.add_init_script(REPORT_VIOLATIONS)
    make_user(app, "root@example.com", admin=True)
    workers(GENERATOR_LATENCY_MS="100")
    sign_in(page, web, "root@example.com")
    create_path_in_page(page, "Under a strict CSP", 2)
    page.click("button:has-text('Build learning path')")  # hx-post, then hx-get polls
    expect(page.locator("#percent")).to_have_text("100%", timeout=60_000)
    expect(page.locator("#tree")).to_contain_text("Foundations", timeout=10_000)

    problems += page.evaluate("window.__cspViolations")

    page.goto(f"{web}/admin/rq/")
    expect(page.locator("table#queues tbody")).to_contain_text("build-path", timeout=15_000)
    problems += page.evaluate("window.__cspViolations")
    page.goto(f"{web}/admin/rq/0/view/workers")
    expect(page.locator("table#workers tbody")).not_to_contain_text("Loading", timeout=15_000)
    problems += page.evaluate("window.__cspViolations")
    assert problems == [], problems
