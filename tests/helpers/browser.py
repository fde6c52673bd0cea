"""Headless Chromium (Debian's, driven by Playwright): the fixtures, signing in and creating a
path the way a person does, and screenshots under test-artifacts/."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from tests.helpers.users import PASSWORD
from tests.services import refuse_in_a_fast_test

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser():  # type: ignore[no-untyped-def]
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is needed for the browser tests: apt-get install chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):  # type: ignore[no-untyped-def]
    refuse_in_a_fast_test("a browser page")
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20_000)
    yield page
    context.close()


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / f"{name}.png", full_page=True)
    if os.environ.get("UPDATE_DOCS_SCREENSHOTS"):
        page.screenshot(path=ROOT / "docs" / "images" / f"{name}.png", full_page=True)


def sign_in(page: Page, base: str, email: str) -> None:
    page.goto(f"{base}/sign-in")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.click("button:has-text('Sign in')")
    expect(page).to_have_url(f"{base}/")


def create_path(page: Page, name: str, concepts: int) -> None:
    page.fill("#path-name", name)
    page.fill("#path-topic", "statistics")
    page.fill("#path-concept_count", str(concepts))
    page.click("button:has-text('Create learning path')")
    expect(page.locator("h1")).to_have_text(name)
    page.wait_for_load_state("load")  # htmx has run: a click before that would post the plain form
