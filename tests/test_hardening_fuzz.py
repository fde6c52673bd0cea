"""Every route — pages, fragments, the API, admin, ops and the mounted rq-dashboard — answers
hostile path parameters, query strings, headers and bodies without a 5xx, and a refused request
writes nothing. Routes are read from the app's URL map, so a new route is fuzzed without asking.

One deterministic sweep sends each route the known killers (NUL, 64-bit overflow, superscript
digits, deep JSON); then hypothesis mixes them with random input (a few hundred examples).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text
from werkzeug.routing import Rule

from app.extensions import db
from app.models import Build, BuildStep, DeadLetter, LearningPath, User
from app.models.builds import StepType
from tests.helpers import create_path, create_workflow, start_build
from tests.helpers.users import make_user
from tests.helpers.web import PASSWORD

KILLERS = ["\x00", "a\x00b", str(2**63), str(2**64 + 1), "²", "٣", "-1", "0", "%", "..", " ", "\u202e"]
DEEP_JSON = "[" * 50_000 + "]" * 50_000
QUERY_NAMES = ["limit", "status", "type", "page", "q", "lastEventId", "next", "fresh", "per_page"]
FORM_NAMES = [
    "email",
    "password",
    "csrf_token",
    "workflow-title",
    "workflow-topic",
    "workflow-audience",
    "workflow-modules",
    "path-name",
    "path-topic",
    "path-description",
    "path-concept_count",
]
FIELD_NAME = re.compile(r"<(?:input|textarea|select)\b[^>]*\bname=\"([^\"]+)\"")
JSON_NAMES = ["title", "topic", "audience", "modules", "contactHours", "name", "conceptCount", "fresh"]
# Columns a request may touch even when refused (e.g. a token's last use), left out of the check.
VOLATILE_COLUMNS = {"last_used_at", "last_seen_at"}


@dataclass
class Target:
    """The app, signed in as an admin for pages and with a token for the API, and real ids."""

    app: Flask
    client: FlaskClient
    auth: dict[str, str]
    ids: dict[str, list[str]] = field(default_factory=dict)
    digest: str = ""  # of the database after the last request
    form_names: list[str] = field(default_factory=list)

    def sign_in_again(self) -> None:
        """After a fuzzed /sign-out: the next example must still reach the signed-in pages."""
        self.client.post("/sign-in", data={"email": "root@example.com", "password": PASSWORD})


def _rules(app: Flask) -> list[tuple[Rule, str]]:
    """Every (rule, method) of the app, the mounted rq-dashboard's included."""
    pairs = [
        (rule, method)
        for rule in app.url_map.iter_rules()
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"})
    ]
    return sorted(pairs, key=lambda pair: (pair[0].rule, pair[1]))


def _snapshot(app: Flask) -> str:
    """A digest of every row of every table (the database is tiny here)."""
    digest = hashlib.sha256()
    with app.app_context():
        for table in db.metadata.sorted_tables:
            columns = [c for c in table.columns if c.name not in VOLATILE_COLUMNS]
            for row in db.session.execute(select(*columns).order_by(*table.primary_key.columns)):
                digest.update(repr(tuple(row)).encode())
        db.session.rollback()
    return digest.hexdigest()


@pytest.fixture
def target(app: Flask, client: FlaskClient) -> Iterator[Target]:
    """Rows of every kind, so ids in paths reach past the 404s."""
    app.config["WTF_CSRF_ENABLED"] = False  # past the CSRF check, into each form's validation
    auth = make_user(app, "root@example.com", admin=True)
    client.post("/sign-in", data={"email": "root@example.com", "password": PASSWORD})
    workflow_id = create_workflow(client, auth)
    path_id = create_path(client, auth)
    build_id = start_build(client, auth, path_id)
    with app.app_context():
        failed_path = LearningPath(owner_id=db.session.scalar(select(User.id)), name="Failed", topic="t")
        db.session.add(failed_path)
        db.session.flush()
        failed = Build(path_id=failed_path.id, status="failed")
        db.session.add(failed)
        db.session.flush()
        step = BuildStep(build_id=failed.id, type=StepType.CONCEPTS, status="failed", entity_name="Failed")
        db.session.add(step)
        db.session.flush()
        letter = DeadLetter(build_id=failed.id, step_id=step.id, original_queue="build-path", error="boom")
        db.session.add(letter)
        db.session.commit()
        ids = {
            "string": [workflow_id, path_id, build_id, failed.id, failed_path.id],
            "int": [str(letter.id), str(step.id), "0"],
        }
    pages = [
        "/",
        "/sign-in",
        f"/paths/{path_id}",
        f"/workflows/{workflow_id}",
        "/admin/",
        "/admin/dead-letters",
    ]
    yield Target(app, client, auth, ids, _snapshot(app), _form_names(client, pages))
    with app.app_context():
        db.session.execute(text("SELECT 1"))  # the connection still answers after the fuzz


def _form_names(client: FlaskClient, pages: list[str]) -> list[str]:
    """Every field name the pages' forms post (a new form's fields are fuzzed without asking)."""
    found: set[str] = set()
    for page in pages:
        found.update(FIELD_NAME.findall(client.get(page).get_data(as_text=True)))
    assert {"path-name", "workflow-modules", "q"} <= found, f"the pages' forms were not read: {found}"
    return sorted(found | set(FORM_NAMES))


def _path(rule: Rule, values: dict[str, str]) -> str:
    """The rule's URL with each argument replaced, percent-encoded (so NUL and '/' travel too)."""
    return re.sub(r"<(?:[^<>:]+:)?([^<>:]+)>", lambda m: quote(values[m[1]], safe=""), rule.rule)


def _send(
    target: Target,
    rule: Rule,
    method: str,
    args: dict[str, str],
    query: dict[str, str],
    headers: dict[str, str],
    body: tuple[str, Any] | None,
) -> tuple[int, str]:
    url = _path(rule, args) + ("?" + urlencode(query) if query else "")
    sent_headers = {**(target.auth if rule.rule.startswith("/api/") else {}), **headers}
    kwargs: dict[str, Any] = {"headers": sent_headers}
    if body is not None:
        kind, kwargs["data"] = body
        if kind == "json":
            kwargs["content_type"] = "application/json"
    response = target.client.open(url, method=method, buffered=False, **kwargs)
    status = response.status_code
    response.close()  # a live event stream is not read to its end
    return status, url


def _check(target: Target, rule: Rule, method: str, **request: Any) -> list[str]:
    """Send one request; the database is digested once per request, after it (the digest
    before is the one taken after the previous request)."""
    try:
        status, url = _send(target, rule, method, **request)
    except Exception as exc:  # TESTING lets a view's exception through: that is a 500
        target.digest = _snapshot(target.app)
        return [f"{method} {rule.rule} raised {type(exc).__name__}: {exc} for {str(request)[:200]}"]
    after = _snapshot(target.app)
    wrote = status >= 400 and after != target.digest
    target.digest = after
    if rule.endpoint in ("auth.sign_in", "auth.sign_out"):
        target.sign_in_again()
        target.digest = _snapshot(target.app)
    if status >= 500:
        return [f"{method} {url} answered {status} to {str(request)[:300]}"]
    if wrote:
        return [f"{method} {url} was refused ({status}) but wrote to the database"]
    return []


def _sweep(target: Target, routes: list[tuple[Rule, str]]) -> list[str]:
    problems: list[str] = []
    for rule, method in routes:
        for killer in KILLERS:
            args = dict.fromkeys(rule.arguments, killer)
            query = dict.fromkeys(QUERY_NAMES, killer)
            headers = {"Last-Event-ID": killer.replace("\x00", "0"), "HX-Request": "true"}
            api = rule.rule.startswith("/api/")
            body = ("json", DEEP_JSON) if api else ("form", dict.fromkeys(target.form_names, killer))
            problems += _check(target, rule, method, args=args, query=query, headers=headers, body=body)
    return problems


@pytest.mark.slow
def test_every_route_takes_the_known_killers_without_a_5xx_or_a_write(target: Target) -> None:
    routes = _rules(target.app)
    assert len(routes) >= 40, "the URL map lost its routes"
    problems = _sweep(target, routes)
    assert problems == [], "\n".join(problems[:20])


def _values(target: Target) -> st.SearchStrategy[str]:
    killers = st.sampled_from(KILLERS)
    numbers = st.integers(min_value=-(2**70), max_value=2**70).map(str)
    real = st.sampled_from(target.ids["string"] + target.ids["int"])
    return st.one_of(real, real, killers, numbers, st.text(max_size=40))


def _json_bodies(values: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    scalars = st.none() | st.booleans() | st.integers() | st.floats() | values
    documents = st.recursive(
        scalars,
        lambda inner: (
            st.lists(inner, max_size=4)
            | st.dictionaries(st.sampled_from(JSON_NAMES) | st.text(max_size=8), inner, max_size=5)
        ),
        max_leaves=12,
    )
    return documents.map(json.dumps) | st.sampled_from([DEEP_JSON, "", "{", "\x00", '{"name": "\\u0000"}'])


def _header_text() -> st.SearchStrategy[str]:
    """What a header can carry: latin-1, no line breaks."""
    return st.text(st.characters(max_codepoint=255, exclude_characters="\r\n"), max_size=30)


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
@pytest.mark.slow
def test_random_input_to_any_route_never_gets_a_5xx_or_writes_when_refused(
    target: Target, data: st.DataObject
) -> None:
    rule, method = data.draw(st.sampled_from(_rules(target.app)), label="route")
    values = _values(target)
    args = {name: data.draw(values, label=name) for name in rule.arguments}
    query = data.draw(st.dictionaries(st.sampled_from(QUERY_NAMES) | st.text(max_size=8), values, max_size=4))
    headers = data.draw(
        st.fixed_dictionaries(
            {},
            optional={
                "Last-Event-ID": st.sampled_from(["1", str(2**63), "²", "-5"]) | _header_text(),
                "HX-Request": st.sampled_from(["true", "false", ""]) | _header_text(),
                "HX-Target": _header_text(),
                "Accept": st.sampled_from(["application/json", "text/html", "*/*"]),
                "Authorization": (st.just("Bearer ") | _header_text()).flatmap(
                    lambda scheme: _header_text().map(lambda token: scheme + token)
                ),
            },
        )
    )
    body: tuple[str, Any] | None = None
    if method != "GET":
        body = data.draw(
            st.tuples(st.just("json"), _json_bodies(values))
            | st.tuples(
                st.just("form"), st.dictionaries(st.sampled_from(target.form_names), values, max_size=6)
            )
        )
    problems = _check(target, rule, method, args=args, query=query, headers=headers, body=body)
    assert problems == [], problems
