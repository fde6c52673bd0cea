"""Numbers typed into the pages' query strings and the CLI, and the pending-build quota on the
regenerate form: each is refused with a 4xx or a message, never a 500 or a traceback."""

from __future__ import annotations

import click
import pytest
from sqlalchemy import func, select

from app.cli import parse_age
from app.devserver import requested_port
from app.extensions import db
from app.models import Build
from tests.helpers import create_path, create_workflow
from tests.helpers.users import make_user
from tests.helpers.web import PASSWORD, csrf_token, post_form

ODD_NUMBERS = ["²", "٣", "1_0", "9223372036854775808", "-1", "x"]


@pytest.mark.parametrize("raw", ODD_NUMBERS)
def test_a_regenerate_page_with_an_odd_piece_number_is_a_404(app, client, raw):
    path_id = create_path(client, _signed_in(app, client), concepts=1)

    assert client.get(f"/paths/{path_id}/regenerate", query_string={"concept": raw}).status_code == 404
    assert client.get(f"/paths/{path_id}/regenerate", query_string={"sub_concept": raw}).status_code == 404


@pytest.mark.parametrize("raw", ODD_NUMBERS)
def test_a_regenerate_page_with_an_odd_module_number_is_a_404(app, client, raw):
    workflow_id = create_workflow(client, _signed_in(app, client), modules=2)

    response = client.get(f"/workflows/{workflow_id}/regenerate", query_string={"module": raw})

    assert response.status_code == 404


def test_regenerate_past_the_pending_quota_says_so_and_writes_nothing(app, client):
    auth = _signed_in(app, client)
    app.config.update(MAX_ACTIVE_BUILDS_PER_USER=1, MAX_PENDING_BUILDS_PER_USER=1)
    first, second, third = (create_path(client, auth, concepts=1) for _ in range(3))
    assert client.post(f"/api/jobs/build/{first}", headers=auth).status_code == 202  # active
    assert client.post(f"/api/jobs/build/{second}", headers=auth).status_code == 202  # pending
    before = _builds(app)

    response = post_form(client, f"/paths/{third}/regenerate", {}, page=f"/paths/{third}/regenerate")

    assert response.status_code == 429
    assert "builds waiting to start" in response.get_data(as_text=True)
    assert _builds(app) == before


@pytest.mark.parametrize("text", ["²d", "٣h", "0d", "d", "99999999999d"])
def test_the_cli_refuses_an_odd_age_with_a_message(text):
    with pytest.raises(click.BadParameter):
        parse_age(text)


@pytest.mark.parametrize("port", ["²", "٣", "0", "65536", "http"])
def test_make_run_refuses_an_odd_port_with_a_sentence(port):
    with pytest.raises(SystemExit) as stopped:
        requested_port({"PORT": port})
    assert "is not a port number" in str(stopped.value)


def _signed_in(app, client) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """Ada, signed in on the pages; returns her API token's header too."""
    auth = make_user(app, "ada@example.com")
    form = {"email": "ada@example.com", "password": PASSWORD, "csrf_token": csrf_token(client)}
    assert client.post("/sign-in", data=form).status_code == 302
    return auth


def _builds(app) -> int:  # type: ignore[no-untyped-def]
    with app.app_context():
        return db.session.scalar(select(func.count(Build.id)))
