"""Small helpers shared by test modules."""

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
