"""One vocabulary of statuses: every stored or derived status has its words on the pages, the
templates compare against the enums (exposed as Jinja globals), never raw strings, and the
admin queue says a lesson-plan run in a build's words."""

from __future__ import annotations

import re
from pathlib import Path

from flask import Flask, render_template_string
from sqlalchemy import select

from app.extensions import db
from app.models import LessonPlanRun, User, Workflow
from app.models.statuses import RUN_AS_BUILD, STATUS_ENUMS, BuildStatus, RunStatus
from app.web.filters import STATUS_WORDS
from tests.helpers.web import sign_in

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
EVERY_STATUS = {status.value for enum_class in STATUS_ENUMS.values() for status in enum_class}
# `x.status == "failed"`, `status in ("pending", …)`, `badge("failed")`: a raw status where an enum belongs.
RAW_STATUS = re.compile(
    r"""(status\s*(==|!=|in)\s*\(?|badge\()\s*["'](""" + "|".join(sorted(EVERY_STATUS)) + r""")["']"""
)


def test_every_status_has_its_words() -> None:
    assert EVERY_STATUS <= set(STATUS_WORDS), EVERY_STATUS - set(STATUS_WORDS)


def test_a_run_is_said_in_a_builds_words() -> None:
    assert set(RUN_AS_BUILD) == set(RunStatus)
    assert all(isinstance(status, BuildStatus) for status in RUN_AS_BUILD.values())


def test_templates_see_the_status_enums(app: Flask) -> None:
    with app.test_request_context():
        shown = render_template_string(
            "{{ BuildStatus.PAUSED }} {{ 'complete' == RunStatus.COMPLETE }} "
            "{{ WorkStatus.RETRYING }} {{ WorkflowStatus.IN_PROGRESS }}"
        )
    assert shown == "paused True retrying in_progress"


def test_templates_compare_statuses_to_enums_not_strings() -> None:
    raw = [
        f"{path.relative_to(TEMPLATES)}:{number}: {line.strip()}"
        for path in sorted(TEMPLATES.rglob("*.html"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if RAW_STATUS.search(line)
    ]
    assert raw == []


def test_the_admin_queue_lists_a_run_in_a_builds_words(app, client) -> None:
    sign_in(app, client, "root@example.com", admin=True)
    with app.app_context():
        owner = db.session.scalar(select(User.id).where(User.email == "root@example.com"))
        workflow = Workflow(owner_id=owner, title="Run in build words", topic="statistics")
        db.session.add(workflow)
        db.session.flush()
        db.session.add(LessonPlanRun(workflow_id=workflow.id, status=RunStatus.COMPLETE))
        db.session.commit()

    completed = client.get("/admin/jobs?status=completed").get_data(as_text=True)
    processing = client.get("/admin/jobs?status=processing").get_data(as_text=True)

    assert "Run in build words" in completed and "badge-completed" in completed
    assert "Run in build words" not in processing
