"""Regenerate one concept and one module from the pages, in headless Chromium against gunicorn
and a real worker: the link, the confirm step, the live progress, and only that piece replaced."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import func, select

from app.extensions import db
from app.models import Concept, GeneratorCall, LearningPath, Module, SubConcept
from tests.helpers.browser import create_path, shot, sign_in
from tests.helpers.users import make_user
from tests.services import wait_until

pytestmark = pytest.mark.slow


def _decomposed_at(app) -> list:  # type: ignore[no-untyped-def,type-arg]
    with app.app_context():
        return list(db.session.scalars(select(Concept.decomposed_at).order_by(Concept.position)))


def _calls_per_module(app) -> list[int]:  # type: ignore[no-untyped-def]
    with app.app_context():
        rows = db.session.execute(
            select(Module.position, func.count(GeneratorCall.id))
            .outerjoin(GeneratorCall, GeneratorCall.module_id == Module.id)
            .group_by(Module.position)
            .order_by(Module.position)
        ).all()
    return [count for _, count in rows]


def test_regenerate_one_concept_from_the_tree(app, web, workers, page: Page):  # noqa: F811
    make_user(app, "ada@example.com")
    workers(GENERATOR_LATENCY_MS="150")
    sign_in(page, web, "ada@example.com")
    create_path(page, "Regenerate a concept", 3)
    page.click("button:has-text('Build learning path')")
    expect(page.locator("#percent")).to_have_text("100%", timeout=60_000)
    expect(page.locator("#tree ol.tree > li")).to_have_count(3, timeout=10_000)
    expect(page.locator("#panel")).not_to_contain_text("Build again")
    before = _decomposed_at(app)

    second = page.locator("#tree ol.tree > li").nth(1)
    name = second.locator("summary strong").first.inner_text()
    second.locator("summary a.regenerate").first.click()
    expect(page.locator("h1")).to_have_text(f"Regenerate concept “{name}”?")
    shot(page, "regenerate-confirm")
    page.click("button:has-text('Yes, regenerate')")

    expect(page.locator("#panel .scope")).to_contain_text(
        re.compile(f"regenerat(ing|ed) concept “{re.escape(name)}” only", re.I)
    )
    expect(page.locator("#panel .badge")).to_have_text("completed", timeout=60_000)
    expect(page.locator("#percent")).to_have_text("100%")
    expect(page.locator("#tree")).to_contain_text(name)
    shot(page, "regenerate-concept-done")
    after = _decomposed_at(app)
    assert after[0] == before[0] and after[2] == before[2] and after[1] > before[1]


def test_regenerate_one_module_from_the_workflow_page(app, web, workers, page: Page):  # noqa: F811
    make_user(app, "ada@example.com")
    workers(GENERATOR_LATENCY_MS="150")
    sign_in(page, web, "ada@example.com")
    page.fill("#workflow-title", "Regenerate a module")
    page.fill("#workflow-topic", "Data literacy")
    page.fill("#workflow-modules", "Reading charts\nSpreadsheets\nDashboards")
    page.click("button:has-text('Create workflow')")
    page.click("button:has-text('Generate lesson plans')")
    expect(page.locator("#progress h2 .badge")).to_have_text("completed", timeout=60_000)
    assert _calls_per_module(app) == [1, 1, 1]

    module = page.locator("ul.modules > li").nth(1)
    module.locator("a.regenerate").click()
    expect(page.locator("h1")).to_contain_text("Module 2, “Spreadsheets”")
    page.click("button:has-text('Yes, regenerate')")

    expect(page.locator("#progress h2 .badge")).to_have_text(re.compile("processing|completed"))
    expect(page.locator("#progress h2 .badge")).to_have_text("completed", timeout=60_000)
    expect(page.locator("#lessons-1 .lessons li").first).to_be_visible()
    shot(page, "regenerate-module-done")
    assert _calls_per_module(app) == [1, 2, 1], "module 2 asked again, the others untouched"


def _new_concepts_stored_but_not_broken_down(app) -> bool:  # type: ignore[no-untyped-def]
    with app.app_context():
        path = db.session.scalar(select(LearningPath))
        subs = db.session.scalar(select(func.count(SubConcept.id)))
        return path.concepts_generated_at is not None and subs == 0


def test_regenerating_the_whole_path_keeps_the_old_tree_marked_until_the_new_one_is_done(
    app,
    web,
    workers,
    page: Page,  # noqa: F811
):
    make_user(app, "ada@example.com")
    workers(GENERATOR_LATENCY_MS="1500")
    sign_in(page, web, "ada@example.com")
    create_path(page, "Regenerate the whole path", 2)
    page.click("button:has-text('Build learning path')")
    expect(page.locator("#percent")).to_have_text("100%", timeout=120_000)
    with app.app_context():
        first_sub = db.session.scalar(select(SubConcept.name).order_by(SubConcept.id))

    page.click("a:has-text('Regenerate…')")
    page.click("button:has-text('Yes, regenerate')")
    wait_until(
        lambda: _new_concepts_stored_but_not_broken_down(app),
        timeout=60,
        interval=0.05,
        message="new concepts",
    )
    page.reload()

    expect(page.locator("#tree ol.tree.previous")).to_be_visible()
    expect(page.locator("#tree .updating")).to_contain_text("Being updated")
    expect(page.locator("#tree ol.tree.previous")).to_contain_text(first_sub)
    shot(page, "regenerate-path-running")
    expect(page.locator("#panel .badge")).to_have_text("completed", timeout=120_000)
    expect(page.locator("#tree ol.tree.previous")).to_have_count(0)
    expect(page.locator("#tree .updating")).to_have_count(0)
    expect(page.locator("#tree ol.tree > li")).to_have_count(2)
    with app.app_context():
        names = list(db.session.scalars(select(SubConcept.name)))
    expect(page.locator("#tree ol.tree")).to_contain_text(names[0])
