"""Output escaping holds on every page that shows user text (a guard: it held in the probe)."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient

from tests.helpers import create_path, create_workflow, start_build
from tests.helpers.web import sign_in

PAYLOAD = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def test_user_text_is_escaped_on_every_page_that_shows_it(
    app: Flask, client: FlaskClient, auth: dict[str, str]
) -> None:
    path_id = create_path(client, auth, name=PAYLOAD, topic=PAYLOAD, description=PAYLOAD)
    workflow_id = create_workflow(client, auth, title=PAYLOAD, topic=PAYLOAD, audience=PAYLOAD)
    build_id = start_build(client, auth, path_id)
    sign_in(app, client, "root@example.com", admin=True)
    pages = ["/", f"/paths/{path_id}", f"/workflows/{workflow_id}", "/admin/", f"/admin/builds/{build_id}"]
    for url in pages:
        html = client.get(url).get_data(as_text=True)
        assert "&lt;script&gt;" in html, url
        assert "<script>alert" not in html and "<img src=x" not in html, url
