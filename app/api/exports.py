"""Downloads of a workflow's lesson plans and a path's tree, as Markdown or JSON, streamed."""

from __future__ import annotations

from flask import g, request
from flask.typing import ResponseReturnValue

from app.access import owned_path, owned_workflow
from app.api import bp
from app.errors import ApiError
from app.exports import ExportFormat, learning_path_export, lesson_plans_export
from app.exports.download import download_response


def _requested_format() -> ExportFormat:
    try:
        return ExportFormat.parse(request.args.get("format"))
    except ValueError as exc:
        raise ApiError(400, "invalid_format", str(exc)) from None


@bp.get("/v3/workflow/<workflow_id>/export")
def export_workflow(workflow_id: str) -> ResponseReturnValue:
    """Download the workflow's lesson plans (`?format=md|json`, JSON by default)."""
    export_format = _requested_format()
    return download_response(lesson_plans_export(owned_workflow(workflow_id, g.user), export_format))


@bp.get("/learning-paths/<path_id>/export")
def export_learning_path(path_id: str) -> ResponseReturnValue:
    """Download the path's tree (`?format=md|json`, JSON by default)."""
    export_format = _requested_format()
    return download_response(learning_path_export(owned_path(path_id, g.user), export_format))
