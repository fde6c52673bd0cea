"""Driving the JSON API: create a workflow or a path, start a run or a build, wait for its status."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient

from tests.services import wait_until


def create_workflow(
    client: FlaskClient, auth: dict[str, str], modules: int = 3, hours: float = 2, **fields: Any
) -> str:
    body = {
        "title": "Data Literacy for Nurses",
        "topic": "Data literacy",
        "audience": "Ward nurses",
        "modules": [{"title": f"Module {i + 1}", "contactHours": hours} for i in range(modules)],
        **fields,
    }
    response = client.post("/api/v3/workflows", json=body, headers=auth)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["data"]["id"]


def status_of(client: FlaskClient, auth: dict[str, str], workflow_id: str) -> dict[str, Any]:
    response = client.get(f"/api/v3/workflow/{workflow_id}/step10/status", headers=auth)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["data"]


def wait_for_status(
    client: FlaskClient, auth: dict[str, str], workflow_id: str, wanted: str, timeout: float = 60
) -> dict[str, Any]:
    return wait_until(
        lambda: (s := status_of(client, auth, workflow_id))["status"] == wanted and s,
        timeout=timeout,
        interval=0.2,
        message=f"workflow {workflow_id} to be {wanted}",
    )


def create_path(client: FlaskClient, auth: dict[str, str], concepts: int = 3, **fields: Any) -> str:
    body = {"name": "Statistics for Nurses", "topic": "statistics", "conceptCount": concepts, **fields}
    response = client.post("/api/learning-paths", json=body, headers=auth)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def start_build(client: FlaskClient, auth: dict[str, str], path_id: str) -> str:
    response = client.post(f"/api/jobs/build/{path_id}", headers=auth)
    assert response.status_code == 202, response.get_json()
    return response.get_json()["jobId"]


def build_of(client: FlaskClient, auth: dict[str, str], build_id: str) -> dict[str, Any]:
    response = client.get(f"/api/jobs/{build_id}", headers=auth)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def wait_for_build(
    client: FlaskClient, auth: dict[str, str], build_id: str, *wanted: str, timeout: float = 90
) -> dict[str, Any]:
    wanted = wanted or ("completed",)
    return wait_until(
        lambda: (b := build_of(client, auth, build_id))["status"] in wanted and b,
        timeout=timeout,
        interval=0.2,
        message=f"build {build_id} to be {' or '.join(wanted)}",
    )
