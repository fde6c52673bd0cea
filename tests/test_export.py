"""Exports: a workflow's lesson plans and a path's tree as Markdown and JSON, owner-only,
streamed and bounded in memory, downloadable from the API and from the pages."""

from __future__ import annotations

import json
import re
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from flask import Flask
from playwright.sync_api import expect
from sqlalchemy import insert, select

from app.exports import ExportFormat, learning_path_export
from app.exports.schema import LearningPathExportV1, LessonPlansExportV1
from app.extensions import db
from app.models import Concept, KnowledgeUnit, LearningPath, LessonPlan, Module, SubConcept, User, Workflow
from tests.helpers import browser as browser_helpers
from tests.helpers import create_path, create_workflow, start_build, wait_for_build, wait_for_status
from tests.helpers.users import make_user
from tests.helpers.web import sign_in

ROOT = Path(__file__).resolve().parent.parent


def _user_id(app: Flask, email: str) -> int:
    with app.app_context():
        return db.session.scalar(select(User.id).where(User.email == email))


def _activities(module: int, lesson: int) -> list[dict[str, Any]]:
    return [
        {"name": f"Warm-up {module}.{lesson}", "kind": "discussion", "duration_minutes": 10},
        {"name": f"Practice {module}.{lesson}", "kind": "exercise", "duration_minutes": 25},
        {"name": f"Wrap-up {module}.{lesson}", "kind": "reflection", "duration_minutes": 5},
    ]


def seed_workflow(app: Flask, owner_id: int, title: str = "Data literacy", lessons: int = 3) -> str:
    """A workflow of three modules, the last without lesson plans; lessons are inserted in reverse
    order, so an export that followed row ids instead of `order` would come out backwards."""
    with app.app_context():
        workflow = Workflow(owner_id=owner_id, title=title, topic="Data literacy", audience="Ward nurses")
        for m in range(3):
            status = "completed" if m < 2 else "pending"
            module = Module(position=m, title=f"Module title {m + 1}", contact_hours=2.0, status=status)
            plans = [
                LessonPlan(
                    order=i,
                    title=f"Lesson {m + 1}.{i + 1}",
                    objectives=[f"Read a chart {m + 1}.{i + 1}", f"Explain a trend {m + 1}.{i + 1}"],
                    activities=_activities(m + 1, i + 1),
                    assessment=f"Quiz {m + 1}.{i + 1}",
                    duration_minutes=40,
                )
                for i in range(lessons if m < 2 else 0)
            ]
            module.lesson_plans = list(reversed(plans))
            workflow.modules.append(module)
        db.session.add(workflow)
        db.session.commit()
        return workflow.id


def seed_path(
    app: Flask,
    owner_id: int,
    concepts: int = 3,
    subs: int = 2,
    units: int = 3,
    content: str = "Body",
    name: str = "Stats",
) -> str:
    """A path with a concept without sub-concepts and a sub-concept without units at the end; rows
    are bulk-inserted in reverse position order, so reading by id would come out backwards."""
    with app.app_context():
        path = LearningPath(
            owner_id=owner_id, name=name, topic="statistics", description="For nurses", concept_count=concepts
        )
        db.session.add(path)
        db.session.flush()
        for c in reversed(range(concepts + 1)):
            concept = Concept(
                path_id=path.id, position=c, name=f"Concept {c + 1}", description=f"About {c + 1}"
            )
            db.session.add(concept)
            db.session.flush()
            for s in reversed(range(subs + 1 if c < concepts else 0)):
                sub = SubConcept(
                    concept_id=concept.id, position=s, name=f"Sub {c + 1}.{s + 1}", description=""
                )
                db.session.add(sub)
                db.session.flush()
                rows = [
                    {
                        "sub_concept_id": sub.id,
                        "position": u,
                        "title": f"Unit {c + 1}.{s + 1}.{u + 1}",
                        "kind": "explanation",
                        "content": f"{content} {c + 1}.{s + 1}.{u + 1}",
                    }
                    for u in reversed(range(units if s < subs else 0))
                ]
                if rows:
                    db.session.execute(insert(KnowledgeUnit), rows)
        db.session.commit()
        return path.id


def _minutes(activity: dict[str, Any]) -> int:
    # Read either spelling, should the stored activities move to camelCase.
    return activity.get("durationMinutes", activity.get("duration_minutes"))


def lesson_plans_in_db(app: Flask, workflow_id: str) -> list[dict[str, Any]]:
    """The modules and their lesson plans as the database orders them, in the export's shape."""
    with app.app_context():
        workflow = db.session.get(Workflow, workflow_id)
        return [
            {
                "number": module.position + 1,
                "title": module.title,
                "contactHours": module.contact_hours,
                "status": module.status,
                "lessonPlans": [
                    {
                        "number": number,
                        "title": lesson.title,
                        "durationMinutes": lesson.duration_minutes,
                        "objectives": lesson.objectives,
                        "activities": [
                            {"name": a["name"], "kind": a["kind"], "durationMinutes": _minutes(a)}
                            for a in lesson.activities
                        ],
                        "assessment": lesson.assessment,
                    }
                    for number, lesson in enumerate(module.lesson_plans, start=1)
                ],
            }
            for module in workflow.modules
        ]


def tree_in_db(app: Flask, path_id: str) -> list[dict[str, Any]]:
    with app.app_context():
        path = db.session.get(LearningPath, path_id)
        return [
            {
                "number": c,
                "name": concept.name,
                "description": concept.description,
                "subConcepts": [
                    {
                        "number": s,
                        "name": sub.name,
                        "description": sub.description,
                        "knowledgeUnits": [
                            {"number": u, "title": unit.title, "kind": unit.kind, "content": unit.content}
                            for u, unit in enumerate(sub.knowledge_units, start=1)
                        ],
                    }
                    for s, sub in enumerate(concept.sub_concepts, start=1)
                ],
            }
            for c, concept in enumerate(path.concepts, start=1)
        ]


def download(client, url: str, headers: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    response = client.get(url, headers=headers or {})
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    return response


# ----- lesson plans -----


def test_the_json_export_of_lesson_plans_holds_every_lesson_and_activity_in_order(app, client, auth):
    workflow_id = seed_workflow(app, _user_id(app, "designer@example.com"))

    response = download(client, f"/api/v3/workflow/{workflow_id}/export?format=json", auth)

    document = LessonPlansExportV1.model_validate_json(response.get_data())
    body = response.get_json()
    assert body["schemaVersion"] == 1 and body["kind"] == "lessonPlans"
    assert response.mimetype == "application/json"
    assert body["modules"] == lesson_plans_in_db(app, workflow_id)
    assert [lesson["title"] for lesson in body["modules"][0]["lessonPlans"]] == [
        "Lesson 1.1",
        "Lesson 1.2",
        "Lesson 1.3",
    ]
    assert body["modules"][2]["lessonPlans"] == []
    assert body["totals"] == {"modules": 3, "lessonPlans": 6, "contactHours": 4.0}
    assert document.workflow.id == workflow_id and document.workflow.audience == "Ward nurses"


def test_the_json_export_is_the_default_format(app, client, auth):
    workflow_id = seed_workflow(app, _user_id(app, "designer@example.com"))

    response = download(client, f"/api/v3/workflow/{workflow_id}/export", auth)

    assert response.get_json()["schemaVersion"] == 1


def test_the_markdown_export_of_lesson_plans_reads_as_headings_objectives_activities_and_assessment(
    app, client, auth
):
    workflow_id = seed_workflow(app, _user_id(app, "designer@example.com"), title="Data literacy")

    response = download(client, f"/api/v3/workflow/{workflow_id}/export?format=md", auth)

    text = response.get_data(as_text=True)
    assert response.mimetype == "text/markdown"
    assert text.startswith("# Data literacy\n")
    headings = re.findall(r"^#{2,3} .*$", text, flags=re.M)
    assert headings == [
        "## Module 1: Module title 1",
        "### Lesson 1: Lesson 1.1 (40 min)",
        "### Lesson 2: Lesson 1.2 (40 min)",
        "### Lesson 3: Lesson 1.3 (40 min)",
        "## Module 2: Module title 2",
        "### Lesson 1: Lesson 2.1 (40 min)",
        "### Lesson 2: Lesson 2.2 (40 min)",
        "### Lesson 3: Lesson 2.3 (40 min)",
        "## Module 3: Module title 3",
    ]
    lesson = text.split("### Lesson 2: Lesson 2.2 (40 min)")[1].split("###")[0]
    assert "**Objectives**\n\n- Read a chart 2.2\n- Explain a trend 2.2\n" in lesson
    assert (
        "**Activities**\n\n1. Warm-up 2.2 (discussion) — 10 min\n2. Practice 2.2 (exercise) — 25 min\n"
        "3. Wrap-up 2.2 (reflection) — 5 min\n" in lesson
    )
    assert "**Assessment**\n\nQuiz 2.2\n" in lesson
    assert "## Module 3: Module title 3\n\n2 contact hours\n\n_No lesson plans generated yet._" in text


def test_the_markdown_export_says_one_contact_hour_in_the_singular(app, client, auth):
    workflow_id = seed_workflow(app, _user_id(app, "designer@example.com"))
    with app.app_context():
        module = db.session.scalar(
            select(Module).where(Module.workflow_id == workflow_id, Module.position == 2)
        )
        module.contact_hours = 1.0
        db.session.commit()

    text = download(client, f"/api/v3/workflow/{workflow_id}/export?format=md", auth).get_data(as_text=True)

    assert "## Module 3: Module title 3\n\n1 contact hour\n\n" in text
    assert "## Module 1: Module title 1\n\n2 contact hours\n\n" in text


@pytest.mark.slow
def test_a_generated_workflows_export_matches_what_the_run_stored(app, client, auth, workers):
    workers()
    workflow_id = create_workflow(client, auth, modules=3, hours=1.5)
    assert client.post(f"/api/v3/workflow/{workflow_id}/step10", headers=auth).status_code == 202
    wait_for_status(client, auth, workflow_id, "complete")

    body = download(client, f"/api/v3/workflow/{workflow_id}/export?format=json", auth).get_json()
    stored = client.get(f"/api/v3/workflow/{workflow_id}/step10", headers=auth).get_json()["data"]

    LessonPlansExportV1.model_validate(body)
    assert body["modules"] == lesson_plans_in_db(app, workflow_id)
    assert body["totals"]["lessonPlans"] == stored["totalLessons"] > 0
    assert body["totals"]["contactHours"] == stored["totalContactHours"]
    assert [m["title"] for m in body["modules"]] == ["Module 1", "Module 2", "Module 3"]


# ----- learning paths -----


def test_the_json_export_of_a_path_holds_every_concept_sub_concept_and_unit_in_order(app, client, auth):
    path_id = seed_path(app, _user_id(app, "designer@example.com"))

    response = download(client, f"/api/learning-paths/{path_id}/export?format=json", auth)

    document = LearningPathExportV1.model_validate_json(response.get_data())
    body = response.get_json()
    assert body["schemaVersion"] == 1 and body["kind"] == "learningPath"
    assert body["concepts"] == tree_in_db(app, path_id)
    assert [u["title"] for u in body["concepts"][0]["subConcepts"][1]["knowledgeUnits"]] == [
        "Unit 1.2.1",
        "Unit 1.2.2",
        "Unit 1.2.3",
    ]
    assert body["concepts"][0]["subConcepts"][2]["knowledgeUnits"] == []  # a sub-concept without units
    assert body["concepts"][3]["subConcepts"] == []  # a concept not yet decomposed
    assert body["totals"] == {"concepts": 4, "subConcepts": 9, "knowledgeUnits": 18}
    assert document.path.id == path_id and document.path.conceptCount == 3


def test_the_markdown_export_of_a_path_numbers_its_headings_by_level(app, client, auth):
    path_id = seed_path(app, _user_id(app, "designer@example.com"), concepts=2, subs=1, units=2)

    text = download(client, f"/api/learning-paths/{path_id}/export?format=md", auth).get_data(as_text=True)

    assert text.startswith("# Stats\n\nLearning path · statistics\n\nFor nurses\n")
    assert re.findall(r"^#{2,4} .*$", text, flags=re.M) == [
        "## 1. Concept 1",
        "### 1.1 Sub 1.1",
        "#### 1.1.1 Unit 1.1.1",
        "#### 1.1.2 Unit 1.1.2",
        "### 1.2 Sub 1.2",
        "## 2. Concept 2",
        "### 2.1 Sub 2.1",
        "#### 2.1.1 Unit 2.1.1",
        "#### 2.1.2 Unit 2.1.2",
        "### 2.2 Sub 2.2",
        "## 3. Concept 3",
    ]
    assert "#### 2.1.2 Unit 2.1.2\n\n_explanation_\n\nBody 2.1.2\n" in text


@pytest.mark.slow
def test_a_built_paths_export_matches_what_the_build_stored(app, client, auth, workers):
    workers()
    path_id = create_path(client, auth, concepts=3)
    wait_for_build(client, auth, start_build(client, auth, path_id))

    body = download(client, f"/api/learning-paths/{path_id}/export", auth).get_json()
    stored = client.get(f"/api/learning-paths/{path_id}", headers=auth).get_json()

    LearningPathExportV1.model_validate(body)
    assert body["concepts"] == tree_in_db(app, path_id)
    assert [c["name"] for c in body["concepts"]] == [c["name"] for c in stored["concepts"]]
    units = [u["title"] for c in stored["concepts"] for s in c["subConcepts"] for u in s["knowledgeUnits"]]
    exported = [u["title"] for c in body["concepts"] for s in c["subConcepts"] for u in s["knowledgeUnits"]]
    assert exported == units and len(units) == body["totals"]["knowledgeUnits"] > 0


# ----- access, bad input, headers -----


@pytest.mark.parametrize("kind", ["workflow", "path"])
def test_another_users_export_is_a_404_and_an_admins_is_allowed(app, client, auth, kind):
    owner = _user_id(app, "designer@example.com")
    url = (
        f"/api/v3/workflow/{seed_workflow(app, owner)}/export"
        if kind == "workflow"
        else f"/api/learning-paths/{seed_path(app, owner)}/export"
    )
    stranger = make_user(app, "stranger@example.com")
    admin = make_user(app, "root@example.com", admin=True)

    refused = client.get(url, headers=stranger)

    assert refused.status_code == 404
    assert refused.get_json()["success"] is False and refused.get_json()["error"]["code"] == "not_found"
    assert client.get(url, headers=admin).status_code == 200
    assert client.get(url).status_code == 401


@pytest.mark.parametrize("value", ["pdf", "MD;", "", "json,md"])
@pytest.mark.parametrize("kind", ["workflow", "path"])
def test_an_unknown_format_is_a_400_with_a_json_error(app, client, auth, kind, value):
    owner = _user_id(app, "designer@example.com")
    url = (
        f"/api/v3/workflow/{seed_workflow(app, owner)}/export"
        if kind == "workflow"
        else f"/api/learning-paths/{seed_path(app, owner)}/export"
    )

    response = client.get(url, query_string={"format": value}, headers=auth)

    if value == "":  # an empty value is no choice: the default, JSON
        assert response.status_code == 200 and response.get_json()["schemaVersion"] == 1
        return
    assert response.status_code == 400
    assert response.get_json() == {
        "success": False,
        "error": {"code": "invalid_format", "message": f"format must be 'md' or 'json', not {value!r}."},
    }


def test_the_format_is_read_whatever_its_case(app, client, auth):
    path_id = seed_path(app, _user_id(app, "designer@example.com"))

    response = download(client, f"/api/learning-paths/{path_id}/export?format=MD", auth)

    assert response.mimetype == "text/markdown" and response.get_data(as_text=True).startswith("# Stats\n")


def test_an_export_is_streamed_as_an_attachment(app, client, auth):
    workflow_id = seed_workflow(app, _user_id(app, "designer@example.com"), title="Data literacy")

    response = client.get(f"/api/v3/workflow/{workflow_id}/export?format=md", headers=auth)

    assert response.status_code == 200 and response.is_streamed
    assert response.headers["Content-Disposition"] == 'attachment; filename="Data literacy-lesson-plans.md"'
    assert response.headers["Content-Type"] == "text/markdown; charset=utf-8"
    assert response.headers["Cache-Control"] == "private, no-store"
    assert "Content-Length" not in response.headers and "ETag" not in response.headers


ODD_TITLE = 'Statistics: Ünïcode & "quotes" / slashes'
ODD_TITLE_FILE = "Statistics Ünïcode & 'quotes' slashes"


def _disposition(header: str) -> tuple[str, str | None]:
    """The plain `filename` (a token or a quoted string) and the decoded `filename*` of a
    Content-Disposition that holds nothing else."""
    match = re.fullmatch(
        r'attachment; filename=(?:([!#$%&\'*+.^_`|~0-9A-Za-z-]+)|"((?:[^"\\]|\\.)*)")'
        r"(?:; filename\*=UTF-8''([!#$&+.^_`|~0-9A-Za-z%-]+))?",
        header,
    )
    assert match, header
    token, quoted, encoded = match.groups()
    plain = token if token is not None else re.sub(r"\\(.)", r"\1", quoted)
    return plain, encoded and unquote(encoded)


@pytest.mark.parametrize(
    "url",
    [
        "/api/v3/workflow/{workflow}/export?format=md",
        "/api/learning-paths/{path}/export?format=json",
        "/workflows/{workflow}/export?format=json",
        "/paths/{path}/export?format=md",
    ],
)
def test_every_download_of_a_title_with_spaces_and_other_letters_names_a_sane_file(app, client, auth, url):
    headers = auth if url.startswith("/api/") else None
    if headers is None:
        sign_in(app, client, "ada@example.com")
    owner = _user_id(app, "designer@example.com" if headers else "ada@example.com")
    workflow_id, path_id = seed_workflow(app, owner, title=ODD_TITLE), seed_path(app, owner, name=ODD_TITLE)

    response = client.get(url.format(workflow=workflow_id, path=path_id), headers=headers)

    kind = "lesson-plans" if "workflow" in url else "learning-path"
    extension = url.rsplit("=", 1)[1]
    plain, utf8 = _disposition(response.headers["Content-Disposition"])
    assert utf8 == f"{ODD_TITLE_FILE}-{kind}.{extension}", "RFC 5987: the title's own letters"
    assert plain == f"Statistics Unicode & 'quotes' slashes-{kind}.{extension}", "an ASCII fallback"
    assert plain.isascii()


@pytest.mark.parametrize(
    ("title", "utf8_name", "ascii_name"),
    [
        ('Say "hi"; filename=evil.sh', None, "Say 'hi'; filename=evil.sh"),
        ("Line one\r\nSet-Cookie: x=1", None, "Line one Set-Cookie x=1"),
        ("Données – été 🌞", "Données – été 🌞", "Donnees  ete "),
        ("../../etc/passwd", None, "etc passwd"),
        ("C:\\Windows\\*.exe <a>|b?", None, "C Windows .exe a b"),
        ("Right\u202eexe.md", None, "Right exe.md"),
        ("🌞🌞", "🌞🌞", ""),
        ("///", None, None),
    ],
)
def test_an_odd_title_gives_a_safe_filename_and_no_extra_header(
    app, client, auth, title, utf8_name, ascii_name
):
    owner = _user_id(app, "designer@example.com")
    workflow_id = seed_workflow(app, owner, title=title)

    response = client.get(f"/api/v3/workflow/{workflow_id}/export?format=json", headers=auth)

    assert response.status_code == 200
    plain, utf8 = _disposition(response.headers["Content-Disposition"])
    assert plain == (f"{ascii_name}-lesson-plans.json" if ascii_name is not None else "lesson-plans.json")
    assert utf8 == (f"{utf8_name}-lesson-plans.json" if utf8_name else None)
    assert "Set-Cookie" not in response.headers
    assert response.get_json()["workflow"]["title"] == title


# ----- memory -----


@pytest.mark.slow
def test_exporting_ten_thousand_units_holds_a_small_fraction_of_the_output_in_memory(app):
    make_user(app, "big@example.com")
    owner = _user_id(app, "big@example.com")
    path_id = seed_path(
        app, owner, concepts=10, subs=10, units=100, content="Lorem ipsum dolor sit amet. " * 12
    )

    for export_format in ExportFormat:
        with app.app_context():  # no request: the export needs none
            export = learning_path_export(db.session.get(LearningPath, path_id), export_format)
            size, peak = _traced(export.chunks)
        assert size > 3_000_000, size  # 10,000 units of ~350 characters
        assert peak < size / 5, (export_format, size, peak)


def _traced(chunks: Iterator[str]) -> tuple[int, int]:
    """Characters written, and the peak memory traced while writing them (each chunk dropped)."""
    tracemalloc.start()
    try:
        size = sum(len(chunk) for chunk in chunks)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return size, peak


# ----- pages -----


def test_the_pages_offer_downloads_and_serve_them_to_the_owner_only(app, client):
    sign_in(app, client, "ada@example.com")
    owner = _user_id(app, "ada@example.com")
    workflow_id, path_id = seed_workflow(app, owner), seed_path(app, owner)

    workflow_page = client.get(f"/workflows/{workflow_id}").get_data(as_text=True)
    path_page = client.get(f"/paths/{path_id}").get_data(as_text=True)

    assert f'href="/workflows/{workflow_id}/export?format=md"' in workflow_page
    assert f'href="/workflows/{workflow_id}/export?format=json"' in workflow_page
    assert f'href="/paths/{path_id}/export?format=md"' in path_page
    assert f'href="/paths/{path_id}/export?format=json"' in path_page
    markdown = download(client, f"/workflows/{workflow_id}/export?format=md")
    assert markdown.headers["Content-Disposition"].startswith("attachment;")
    assert "### Lesson 1: Lesson 1.1 (40 min)" in markdown.get_data(as_text=True)
    assert download(client, f"/paths/{path_id}/export?format=json").get_json()["concepts"] == tree_in_db(
        app, path_id
    )
    assert client.get(f"/paths/{path_id}/export?format=pdf").status_code == 400

    other = app.test_client()
    sign_in(app, other, "stranger@example.com")
    assert other.get(f"/workflows/{workflow_id}/export?format=md").status_code == 404
    assert other.get(f"/paths/{path_id}/export?format=json").status_code == 404
    assert app.test_client().get(f"/paths/{path_id}/export").status_code == 302  # to sign-in


def test_the_documented_examples_match_the_schema():
    blocks = re.findall(r"```json\n(.*?)```", (ROOT / "docs" / "EXPORT.md").read_text(), flags=re.S)
    documents = [json.loads(block) for block in blocks if '"schemaVersion"' in block]

    assert {document["kind"] for document in documents} == {"lessonPlans", "learningPath"}
    for document in documents:
        model = LessonPlansExportV1 if document["kind"] == "lessonPlans" else LearningPathExportV1
        model.model_validate(document)


@pytest.mark.slow
def test_the_download_buttons_in_chromium_save_what_the_database_holds(app, web, page):
    make_user(app, "ada@example.com")
    owner = _user_id(app, "ada@example.com")
    workflow_id = seed_workflow(app, owner, title="Données « été »")
    path_id = seed_path(app, owner, name=ODD_TITLE)
    browser_helpers.sign_in(page, web, "ada@example.com")

    page.goto(f"{web}/workflows/{workflow_id}")
    browser_helpers.shot(page, "workflow-downloads")
    lesson_plans = _click_download(page, "Download JSON")
    lesson_plans_md = _click_download(page, "Download Markdown")
    page.goto(f"{web}/paths/{path_id}")
    tree = _click_download(page, "Download JSON")
    tree_md = _click_download(page, "Download Markdown")

    assert lesson_plans[0] == "Données « été »-lesson-plans.json"
    assert json.loads(lesson_plans[1])["modules"] == lesson_plans_in_db(app, workflow_id)
    assert lesson_plans_md[0] == "Données « été »-lesson-plans.md"
    assert lesson_plans_md[1].startswith("# Données « été »\n")
    assert "### Lesson 3: Lesson 2.3 (40 min)" in lesson_plans_md[1]
    assert tree[0] == f"{ODD_TITLE_FILE}-learning-path.json", (
        "no quote, colon or slash for the browser to mangle"
    )
    assert json.loads(tree[1])["concepts"] == tree_in_db(app, path_id)
    assert tree_md[0] == f"{ODD_TITLE_FILE}-learning-path.md"
    assert "#### 3.2.3 Unit 3.2.3\n\n_explanation_\n\nBody 3.2.3\n" in tree_md[1]


def _click_download(page, label: str) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    """Click a Download button; the file's suggested name and its text."""
    with page.expect_download() as info:
        page.click(f"a:has-text('{label}')")
    download = info.value
    return download.suggested_filename, Path(download.path()).read_text(encoding="utf-8")


@pytest.mark.parametrize("kind", ["workflow", "path"])
def test_the_markdown_export_says_when_in_words_with_its_zone_and_the_json_keeps_iso(app, client, auth, kind):
    owner = _user_id(app, "designer@example.com")
    base = (
        f"/api/v3/workflow/{seed_workflow(app, owner)}/export"
        if kind == "workflow"
        else f"/api/learning-paths/{seed_path(app, owner)}/export"
    )

    text = download(client, f"{base}?format=md", auth).get_data(as_text=True)
    body = download(client, f"{base}?format=json", auth).get_json()

    (exported,) = re.findall(r"^Exported (.*)$", text, flags=re.M)
    assert re.fullmatch(r"\d{1,2} [A-Z][a-z]+ \d{4}, \d{2}:\d{2} UTC", exported), exported
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", body["exportedAt"])


def test_the_download_buttons_wait_for_something_to_export_and_say_why(app, client):
    sign_in(app, client, "ada@example.com")
    owner = _user_id(app, "ada@example.com")
    with app.app_context():
        workflow = Workflow(owner_id=owner, title="Empty", topic="t")
        workflow.modules.append(Module(position=0, title="Only", contact_hours=1.0))
        path = LearningPath(owner_id=owner, name="Unbuilt", topic="t")
        db.session.add_all([workflow, path])
        db.session.commit()
        workflow_id, path_id = workflow.id, path.id

    workflow_page = client.get(f"/workflows/{workflow_id}").get_data(as_text=True)
    path_page = client.get(f"/paths/{path_id}").get_data(as_text=True)

    assert "/export?format=" not in workflow_page and "/export?format=" not in path_page
    assert '<button type="button" disabled>Download Markdown</button>' in workflow_page
    assert "Nothing to download yet: the lesson plans are not generated." in workflow_page
    assert '<button type="button" disabled>Download JSON</button>' in path_page
    assert "Nothing to download yet: build the path first." in path_page


def test_a_poll_that_sees_the_first_lesson_plans_brings_the_download_links(app, client):
    sign_in(app, client, "ada@example.com")
    workflow_id = seed_workflow(app, _user_id(app, "ada@example.com"))

    poll = client.get(f"/workflows/{workflow_id}?shown=", headers={"HX-Request": "true"}).get_data(
        as_text=True
    )

    downloads = poll.split('id="downloads"')[1].split("</p>")[0]
    assert 'hx-swap-oob="true"' in downloads
    assert f'href="/workflows/{workflow_id}/export?format=md"' in downloads


@pytest.mark.slow
def test_in_chromium_a_disabled_download_button_looks_disabled(app, web, page):
    make_user(app, "ada@example.com")
    with app.app_context():
        owner = db.session.scalar(select(User.id))
        path = LearningPath(owner_id=owner, name="Unbuilt", topic="t")
        db.session.add(path)
        db.session.commit()
        path_id = path.id
    browser_helpers.sign_in(page, web, "ada@example.com")

    page.goto(f"{web}/paths/{path_id}")

    button = page.locator("#downloads button", has_text="Download JSON")
    expect(button).to_be_disabled()
    colours = button.evaluate("b => [getComputedStyle(b).backgroundColor, getComputedStyle(b).cursor]")
    assert colours == ["rgb(232, 235, 242)", "not-allowed"], "greyed out, not the accent of a live button"
