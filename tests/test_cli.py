"""`flask users …` and `flask jobs …`, run through Flask's CLI runner."""

from __future__ import annotations

from rq import Queue
from sqlalchemy import select

from app.extensions import db
from app.jobs.queues import LESSON_PLANS_QUEUE, connect_redis
from app.models import User
from tests.helpers import create_workflow
from tests.services import free_port


def test_create_a_user_then_a_token_that_signs_api_requests(app, client):
    runner = app.test_cli_runner()

    created = runner.invoke(args=["users", "create", "Ada@Example.com", "--password", "pw", "--admin"])
    token = runner.invoke(args=["users", "token", "ada@example.com"]).output.strip()

    assert created.exit_code == 0 and "created admin user ada@example.com" in created.output
    assert token.startswith("cb_")
    response = client.get("/api/v3/workflow/none", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 404  # authenticated: the workflow simply does not exist
    with app.app_context():
        user = db.session.scalar(select(User))
        assert user.is_admin and user.check_password("pw")
        assert token not in {t.token_hash for t in user.tokens}, "only the hash is stored"


def test_creating_a_user_twice_is_refused(app):
    runner = app.test_cli_runner()
    runner.invoke(args=["users", "create", "ada@example.com", "--password", "pw"])

    again = runner.invoke(args=["users", "create", "ada@example.com", "--password", "other"])

    assert again.exit_code != 0 and "exists already" in again.output


def test_a_token_for_an_unknown_user_is_refused(app):
    result = app.test_cli_runner().invoke(args=["users", "token", "ghost@example.com"])

    assert result.exit_code != 0 and "no user ghost@example.com" in result.output


def test_reconcile_says_so_when_redis_cannot_be_reached(app):
    nowhere = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    app.config["REDIS_URL"] = nowhere
    app.extensions["redis"] = connect_redis(app.config, socket_timeout=1)

    result = app.test_cli_runner().invoke(args=["jobs", "reconcile"])

    assert result.exit_code == 1
    assert f"cannot reach Redis at {nowhere}" in result.output and "queued" not in result.output


def test_reconcile_requeues_a_run_whose_job_redis_lost_and_says_so(app, client, auth, redis_server):
    workflow_id = create_workflow(client, auth, modules=2)
    assert client.post(f"/api/v3/workflow/{workflow_id}/step10", headers=auth).status_code == 202
    redis_server.client().flushall()  # Redis lost the queued job; the database still owes it

    result = app.test_cli_runner().invoke(args=["jobs", "reconcile"])
    again = app.test_cli_runner().invoke(args=["jobs", "reconcile"])

    assert result.exit_code == 0 and "queued 1 job(s)" in result.output
    assert len(Queue(LESSON_PLANS_QUEUE, connection=redis_server.client())) == 1
    assert "queued 0 job(s)" in again.output, "a second sweep finds the job in Redis and queues nothing"
