"""The one piece of exports that knows Flask: an export as a streamed attachment response."""

from __future__ import annotations

from flask import Response, stream_with_context

from app.exports.formats import Export


def download_response(export: Export) -> Response:
    """Stream the export's chunks; the request (and its database session) stays open until the last."""
    response = Response(stream_with_context(export.chunks), content_type=export.content_type)
    response.headers["Content-Disposition"] = export.content_disposition
    response.headers["Cache-Control"] = "private, no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
