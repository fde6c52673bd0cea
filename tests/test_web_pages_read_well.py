"""The pages read well: page numbers that exist, every bad line of the modules box, one
numbering for modules, a failed build's error once and its failed sub-concepts marked, sign-in
fields a password manager fills, a workers page that says each thing once, and a way back from
rq-dashboard."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from markupsafe import escape
from sqlalchemy import select

from app.extensions import db
from app.models import Build, LearningPath, LessonPlanRun, Module, User, Workflow
from tests.helpers.web import post_form, sign_in
from tests.services import wait_until


def _page(client, url: str) -> str:  # type: ignore[no-untyped-def]
    response = client.get(url)
    assert response.status_code == 200, url
    return response.get_data(as_text=True)


def test_a_page_past_the_last_shows_the_last_without_a_newer_link(app, client):
    sign_in(app, client, "root@example.com", admin=True)

    page = _page(client, "/admin/jobs?page=999")

    assert "Page 1 of 1" in page and "Page 999" not in page
    assert "Newer" not in page and "Older" not in page


def test_a_page_number_below_one_shows_the_first(app, client):
    sign_in(app, client, "root@example.com", admin=True)
    assert "Page 1 of 1" in _page(client, "/admin/jobs?page=-4")


def test_the_modules_box_reports_every_bad_line_and_saves_nothing(app, client):
    sign_in(app, client, "ada@example.com")
    modules = "Charts | many\nTables | 2\n | 3\nMaps | 0\nGraphs"

    response = post_form(
        client, "/workflows", {"workflow-title": "T", "workflow-topic": "t", "workflow-modules": modules}
    )

    page = response.get_data(as_text=True)
    assert response.status_code == 422
    errors = page[page.index('id="workflow-modules-error"') :]
    for expected in ("Line 1: “many” is not a number", "Line 3: a title", "Line 4: contact hours"):
        assert expected in errors, expected
    assert "Line 2" not in errors and "Line 5" not in errors
    with app.app_context():
        assert db.session.scalar(select(Workflow)) is None


class _Inputs(HTMLParser):
    """Each <input>'s attributes, in page order."""

    def __init__(self) -> None:
        super().__init__()
        self.inputs: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "input":
            self.inputs.append(dict(attrs))


def _autocomplete(page: str) -> list[tuple[str | None, str | None, str | None]]:
    """(type, id, autocomplete) of each field a person or a password manager fills."""
    parser = _Inputs()
    parser.feed(page)
    return [
        (i.get("type"), i.get("id"), i.get("autocomplete"))
        for i in parser.inputs
        if i.get("type") not in ("hidden", "submit")
    ]


def test_sign_in_fields_say_what_a_password_manager_should_fill(client):
    fields = _autocomplete(_page(client, "/sign-in"))

    assert fields == [("text", "email", "username"), ("password", "password", "current-password")]


def test_the_account_pages_password_fields_say_which_password_is_old_and_which_new(app, client):
    sign_in(app, client, "ada@example.com")
    page = _page(client, "/account")

    assert _autocomplete(page) == [
        ("email", "account-username", "username"),  # which account a saved password is for
        ("password", "current_password", "current-password"),
        ("password", "new_password", "new-password"),
        ("password", "confirm", "new-password"),
    ]
    assert re.search(r'<input[^>]*id="account-username"[^>]*value="ada@example.com"', page)
    parser = _Inputs()
    parser.feed(page)
    (username,) = [i for i in parser.inputs if i.get("id") == "account-username"]
    assert "name" not in username and "readonly" in username and "hidden" in username, "never posted"


def test_the_account_page_keeps_its_autocomplete_when_it_shows_an_error(app, client):
    sign_in(app, client, "ada@example.com")
    wrong = {
        "current_password": "not it at all",
        "new_password": "a-new-password",
        "confirm": "a-new-password",
    }

    response = post_form(client, "/account/password", wrong, page="/account")

    assert response.status_code == 422
    assert [field[2] for field in _autocomplete(response.get_data(as_text=True))] == [
        "username",
        "current-password",
        "new-password",
        "new-password",
    ]


def test_every_page_links_our_favicon(app, client):
    assert 'rel="icon" type="image/svg+xml" href="/static/favicon.svg"' in _page(client, "/sign-in")
    assert client.get("/static/favicon.svg").mimetype == "image/svg+xml"


def test_rq_dashboard_links_back_to_the_app(app, client):
    sign_in(app, client, "root@example.com", admin=True)
    page = _page(client, "/admin/rq/")
    assert re.search(r'<body>\s*<nav id="app-link".*href="/">← Curriculum Builder</a>', page)
    assert 'href="/admin/jobs">Job queue</a>' in page
    assert page.count('id="app-link"') == 1


def test_rq_dashboard_pages_link_our_favicon(app, client):
    sign_in(app, client, "root@example.com", admin=True)
    page = _page(client, "/admin/rq/")
    head = page.split("</head>")[0]
    assert head.count('<link rel="icon" type="image/svg+xml" href="/static/favicon.svg">') == 1


@pytest.mark.parametrize("url", ["/admin/rq/", "/admin/rq/0/view/workers", "/admin/rq/0/view/jobs"])
def test_rq_dashboard_pages_link_our_stylesheet_for_phones_after_their_own(app, client, url):
    """Its tables scrolled sideways at 390 px; ours, loaded last, stacks them (see test_browser_layout)."""
    sign_in(app, client, "root@example.com", admin=True)
    head = _page(client, url).split("</head>")[0]

    assert head.count('<link rel="stylesheet" href="/static/rq-dashboard.css">') == 1
    assert head.rindex("rq-dashboard.css") > head.rindex("bootstrap.min.css")
    assert client.get("/static/rq-dashboard.css").mimetype == "text/css"


def test_rq_dashboard_data_stays_untouched(app, client):
    sign_in(app, client, "root@example.com", admin=True)
    response = client.get("/admin/rq/0/data/queues.json")
    assert response.mimetype == "application/json" and "app-link" not in response.get_data(as_text=True)


@pytest.mark.slow
def test_the_workers_page_says_idle_once_and_explains_an_old_heartbeat(app, client, workers):
    sign_in(app, client, "root@example.com", admin=True)
    workers()

    page = wait_until(
        lambda: '<td data-label="Doing">idle</td>' in (p := _page(client, "/admin/workers")) and p,
        message="a worker to wait for work",
    )

    rows = re.findall(r"<tr>(.*?)</tr>", page, re.S)[1:]
    states = ("idle", "busy", "starting", "suspended")
    assert rows and all(sum(row.count(state) for state in states) == 1 for row in rows), rows
    assert "a heartbeat a few minutes old is normal" in page


def _finished(app, model, status_column, wanted):  # type: ignore[no-untyped-def]
    def check():  # type: ignore[no-untyped-def]
        with app.app_context():
            row = db.session.scalar(select(model).order_by(model.created_at.desc()))
            return row if row is not None and getattr(row, status_column) in wanted else None

    return check


@pytest.mark.slow
def test_module_2_is_module_2_on_the_workflow_page_and_in_the_admin_queue(app, client, workers):
    sign_in(app, client, "root@example.com", admin=True)
    workers(GENERATOR_FAIL_ON="Doomed")
    post_form(
        client,
        "/workflows",
        {
            "workflow-title": "Numbering",
            "workflow-topic": "t",
            "workflow-modules": "Charts | 1\nDoomed tables | 1",
        },
    )
    with app.app_context():
        workflow_id = db.session.scalar(select(Workflow.id))
    post_form(client, f"/workflows/{workflow_id}/generate", {}, page=f"/workflows/{workflow_id}")
    wait_until(_finished(app, LessonPlanRun, "status", ("failed",)), timeout=60, message="the run to fail")

    workflow_page = _page(client, f"/workflows/{workflow_id}")
    queue_page = _page(client, "/admin/jobs")

    assert "Module 2 failed" in workflow_page and "Module 2: Doomed tables" in workflow_page
    assert "Module 2 (Doomed tables)" in queue_page
    assert "Module 1 (Doomed" not in queue_page and "module 1 (Doomed" not in queue_page


@pytest.mark.slow
def test_a_failed_build_shows_its_error_once_and_marks_failed_sub_concepts(app, client, workers):
    sign_in(app, client, "ada@example.com")
    workers(GENERATOR_FAIL_ON=": ")  # every sub-concept's name has one; no concept's has
    post_form(client, "/paths", {"path-name": "Failing", "path-topic": "stats", "path-concept_count": "1"})
    with app.app_context():
        path_id = db.session.scalar(select(LearningPath.id))
    post_form(client, f"/paths/{path_id}/build", {}, page=f"/paths/{path_id}")
    build = wait_until(_finished(app, Build, "status", ("failed",)), timeout=60, message="the build to fail")

    page = _page(client, f"/paths/{path_id}")

    assert build.error and page.count(str(escape(build.error))) == 1, "the build's error, once"
    tree = page[page.index('id="tree"') :]
    failed_rows = re.findall(r'<li class="failed">', tree)
    with app.app_context():
        path = db.session.get(LearningPath, path_id)
        sub_concepts = sum(len(c.sub_concepts) for c in path.concepts)
    assert sub_concepts >= 3 and len(failed_rows) == sub_concepts
    assert tree.count('class="badge badge-failed"') == sub_concepts


def _workflow_with_modules(app, statuses: list[str], run_status: str) -> str:  # type: ignore[no-untyped-def]
    with app.app_context():
        owner = db.session.scalar(select(User.id))
        modules = [
            Module(position=i, title=f"Topic {i + 1}", contact_hours=1, status=status)
            for i, status in enumerate(statuses)
        ]
        workflow = Workflow(owner_id=owner, title="Words", topic="t", modules=modules)
        db.session.add(workflow)
        db.session.flush()
        db.session.add(LessonPlanRun(workflow_id=workflow.id, status=run_status))
        db.session.commit()
        return workflow.id


def test_a_running_workflow_says_processing_never_in_progress(app, client):
    sign_in(app, client, "ada@example.com")
    workflow_id = _workflow_with_modules(app, ["completed", "running"], "running")

    for page in (_page(client, f"/workflows/{workflow_id}"), _page(client, "/")):
        assert 'class="badge badge-processing"' in page and ">processing</span>" in page
        assert "in_progress" not in page and ">running<" not in page


def test_a_finished_workflow_says_completed_never_complete(app, client):
    sign_in(app, client, "ada@example.com")
    workflow_id = _workflow_with_modules(app, ["completed", "completed"], "complete")

    for page in (_page(client, f"/workflows/{workflow_id}"), _page(client, "/")):
        assert ">completed</span>" in page and ">complete</span>" not in page
    assert "1 contact hour" in _page(client, f"/workflows/{workflow_id}")
