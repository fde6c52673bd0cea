"""The README's "Using the API" examples are what the API really sends: every documented
response is compared, key by key, with the real response to the same request."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.generators.offline import OfflineGenerator
from app.generators.schemas import ConceptBrief, PathBrief
from tests.helpers import create_path, create_workflow, start_build, wait_for_build, wait_for_status

README = Path(__file__).resolve().parent.parent / "README.md"
EXAMPLE = re.compile(r"^`(GET|POST) (/api/[^`\s]*)` → `(\d{3})`[^\n]*\n+```json\n(.*?)\n```", re.M | re.S)
# Maps keyed by data (error categories, an event's payload), not by field names.
DATA_KEYED = {"errorCategories"}

Responses = dict[tuple[str, str, int], Any]


def documented_examples() -> Responses:
    return {
        (method, route, int(status)): json.loads(body)
        for method, route, status, body in EXAMPLE.findall(README.read_text())
    }


def assert_same_shape(documented: Any, real: Any, where: str) -> None:
    """Same keys at every level (lists: their first items); null on either side matches anything."""
    if documented is None or real is None:
        return
    if isinstance(documented, dict):
        assert isinstance(real, dict), f"{where}: documented an object, got {real!r}"
        assert set(documented) == set(real), f"{where}: documented {sorted(documented)}, sent {sorted(real)}"
        for key in documented:
            if key not in DATA_KEYED:
                assert_same_shape(documented[key], real[key], f"{where}.{key}")
    elif isinstance(documented, list):
        assert isinstance(real, list), f"{where}: documented a list, got {real!r}"
        if documented and real:
            assert_same_shape(documented[0], real[0], f"{where}[0]")
    else:
        assert type(documented) is type(real) or {type(documented), type(real)} <= {int, float}, (
            f"{where}: documented {documented!r}, sent {real!r}"
        )


def failing_sub_concept() -> str:
    """A sub-concept the offline generator makes for concept 1 of the 'Statistics for Nurses' path."""
    generator = OfflineGenerator()
    concepts = generator.concepts(
        PathBrief(name="Statistics for Nurses", topic="statistics", concept_count=3), lambda _: None
    )
    brief = ConceptBrief(
        path_name="Statistics for Nurses",
        topic="statistics",
        concept_name=concepts[1].name,
        concept_description="",
        position=1,
        total_concepts=3,
    )
    return generator.sub_concepts(brief, lambda _: None)[0].name


def _call(
    client: FlaskClient, auth: dict[str, str], seen: Responses, method: str, route: str, url: str, **kw
):  # type: ignore[no-untyped-def]
    response = client.open(url, method=method, headers=auth, **kw)
    seen[(method, route, response.status_code)] = response.get_json()
    return response


def run_every_documented_request(app: Flask, client: FlaskClient, auth: dict[str, str], workers) -> Responses:  # type: ignore[no-untyped-def]
    """Drive each API route into each documented answer and keep what it sent."""
    seen: Responses = {}

    def call(method: str, route: str, url: str | None = None, **kw: Any):  # type: ignore[no-untyped-def]
        return _call(client, auth, seen, method, route, url or route, **kw)

    workflow_id = create_workflow(client, auth, modules=2)
    call(
        "POST",
        "/api/v3/workflows",
        json={
            "title": "Intro to SQL",
            "topic": "Databases",
            "modules": [{"title": "Selecting rows", "contactHours": 2}],
        },
    )
    call("POST", "/api/v3/workflows", json={"title": "", "topic": "Databases", "modules": []})
    stats = create_path(client, auth, concepts=3)
    call(
        "POST", "/api/learning-paths", json={"name": "Cooking basics", "topic": "cooking", "conceptCount": 1}
    )
    cooking = create_path(client, auth, concepts=1, name="Cooking basics", topic="cooking")

    first = call("POST", "/api/jobs/build/<pathId>", f"/api/jobs/build/{cooking}").get_json()["jobId"]
    call("POST", "/api/jobs/build/<pathId>", f"/api/jobs/build/{cooking}")  # 409
    for action in ("pause", "resume", "cancel"):
        call("POST", f"/api/jobs/<jobId>/{action}", f"/api/jobs/{first}/{action}")
    call("POST", "/api/jobs/<jobId>/pause", f"/api/jobs/{first}/pause")  # 400: it is cancelled
    retried = call("POST", "/api/jobs/<jobId>/retry", f"/api/jobs/{first}/retry").get_json()["jobId"]

    workers(GENERATOR_FAIL_ON=failing_sub_concept())
    call("POST", "/api/v3/workflow/<id>/step10", f"/api/v3/workflow/{workflow_id}/step10")
    failing = start_build(client, auth, stats)
    wait_for_status(client, auth, workflow_id, "complete")
    wait_for_build(client, auth, failing, "failed")
    wait_for_build(client, auth, retried)

    call("POST", "/api/v3/workflow/<id>/step10", f"/api/v3/workflow/{workflow_id}/step10")  # 200
    call("POST", "/api/jobs/build/<pathId>", f"/api/jobs/build/{cooking}")  # 200: complete
    for route, url in [
        ("/api/v3/workflows", None),
        ("/api/v3/workflow/<id>", f"/api/v3/workflow/{workflow_id}"),
        ("/api/v3/workflow/<id>/step10/status", f"/api/v3/workflow/{workflow_id}/step10/status"),
        ("/api/v3/workflow/<id>/step10", f"/api/v3/workflow/{workflow_id}/step10"),
        ("/api/learning-paths", None),
        ("/api/learning-paths/<id>", f"/api/learning-paths/{stats}"),
        ("/api/jobs/<jobId>", f"/api/jobs/{failing}"),
        ("/api/jobs/path/<pathId>", f"/api/jobs/path/{stats}"),
        ("/api/jobs", None),
        ("/api/jobs/<jobId>/steps", f"/api/jobs/{failing}/steps?status=failed"),
        ("/api/dead-letter", None),
        ("/api/jobs/<jobId>", "/api/jobs/no-such-build"),  # 404
    ]:
        call("GET", route, url)
    stream = client.get(f"/api/jobs/{failing}/stream", headers=auth).get_data(as_text=True)
    events = [json.loads(line[6:]) for line in stream.splitlines() if line.startswith("data: ")]
    seen[("GET", "/api/jobs/<jobId>/stream", 200)] = events[-1]  # the final `completed` event
    stream = client.get(f"/api/v3/workflow/{workflow_id}/step10/stream", headers=auth).get_data(as_text=True)
    events = [json.loads(line[6:]) for line in stream.splitlines() if line.startswith("data: ")]
    seen[("GET", "/api/v3/workflow/<id>/step10/stream", 200)] = events[-1]  # the run's `completed`
    letter = seen[("GET", "/api/dead-letter", 200)][0]["id"]
    call("POST", "/api/dead-letter/<id>/retry", f"/api/dead-letter/{letter}/retry")
    return seen


@pytest.mark.slow
def test_every_documented_response_is_what_the_api_sends(app, client, auth, workers):
    documented = documented_examples()

    seen = run_every_documented_request(app, client, auth, workers)

    missing = sorted(set(documented) - set(seen))
    assert not missing, f"documented but never answered so in the run: {missing}"
    undocumented = sorted(key for key in seen if key not in documented and key[2] < 400)
    assert not undocumented, f"answered but not documented: {undocumented}"
    if os.environ.get("UPDATE_API_DOCS"):
        _rewrite_examples(seen)
        documented = documented_examples()
    for key, example in documented.items():
        assert_same_shape(example, seen[key], f"{key[0]} {key[1]} {key[2]}")


def _reshaped(documented: Any, real: Any) -> Any:
    """`real`'s keys (in the documented order, new ones last) with `documented`'s values where it
    has them; lists cut to one item."""
    if isinstance(real, dict):
        known = documented if isinstance(documented, dict) else {}
        order = [key for key in known if key in real] + [key for key in real if key not in known]
        return {key: _reshaped(known.get(key), real[key]) for key in order}
    if isinstance(real, list):
        first = documented[0] if isinstance(documented, list) and documented else None
        rest = documented[1:] if isinstance(documented, list) else []
        return [_reshaped(first, real[0]), *rest] if real else []
    return real if documented is None else documented


def _rewrite_examples(seen: Responses) -> None:
    """UPDATE_API_DOCS=1: bring the README's examples to the keys the API sends now."""

    def rewrite(match: re.Match[str]) -> str:
        key = (match[1], match[2], int(match[3]))
        if key not in seen:
            return match[0]
        body = json.dumps(_reshaped(json.loads(match[4]), seen[key]), ensure_ascii=False)
        return match[0][: match.start(4) - match.start(0)] + body + "\n```"

    README.write_text(EXAMPLE.sub(rewrite, README.read_text()))


def _without_names(text: str) -> str:
    """/api/jobs/<job_id>/steps and /api/jobs/<jobId>/steps alike become /api/jobs/<>/steps."""
    return re.sub(r"<(?:\w+:)?\w+>", "<>", text)


def test_every_api_route_appears_in_the_readme(app):
    readme = _without_names(README.read_text())
    rules = {_without_names(rule.rule) for rule in app.url_map.iter_rules() if rule.rule.startswith("/api/")}

    missing = sorted(rule for rule in rules if not re.search(re.escape(rule) + r"(?![\w/<>-])", readme))

    assert not missing, f"API routes the README does not mention: {missing}"
