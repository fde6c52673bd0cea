"""Download buttons' targets: a workflow's lesson plans and a path's tree as Markdown or JSON."""

from __future__ import annotations

from flask import abort, request
from flask.typing import ResponseReturnValue
from flask_login import current_user

from app.access import owned_path, owned_workflow
from app.exports import ExportFormat, learning_path_export, lesson_plans_export
from app.exports.download import download_response
from app.web import bp


def _requested_format() -> ExportFormat:
    try:
        return ExportFormat.parse(request.args.get("format"))
    except ValueError as exc:
        abort(400, description=str(exc))


@bp.get("/workflows/<workflow_id>/export")
def export_workflow(workflow_id: str) -> ResponseReturnValue:
    """Download the workflow's lesson plans (`?format=md|json`)."""
    export_format = _requested_format()
    return download_response(lesson_plans_export(owned_workflow(workflow_id, current_user), export_format))


@bp.get("/paths/<path_id>/export")
def export_path(path_id: str) -> ResponseReturnValue:
    """Download the path's tree (`?format=md|json`)."""
    export_format = _requested_format()
    return download_response(learning_path_export(owned_path(path_id, current_user), export_format))
