"""The one piece of exports that knows Flask: an export as a streamed attachment response."""

from __future__ import annotations

import io
from collections.abc import Iterator

from flask import Response, send_file, stream_with_context

from app.exports.formats import Export


def download_response(export: Export) -> Response:
    """Stream the export's chunks; the request (and its database session) stays open until the last.

    Werkzeug's send_file writes the Content-Disposition: the name as `filename`, and when it is
    not ASCII, an ASCII fallback as `filename` and the name itself as RFC 5987 `filename*`.
    """
    body = io.BufferedReader(_EncodedChunks(stream_with_context(export.chunks)))
    response = send_file(
        body,
        mimetype=export.mimetype,
        as_attachment=True,
        download_name=export.filename,
        conditional=False,  # no ranges or 304s: the body is written as it is read
        etag=False,
    )
    response.headers["Cache-Control"] = "private, no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


class _EncodedChunks(io.RawIOBase):
    """Text chunks as a binary file that send_file reads as it sends: one chunk in memory at a time."""

    def __init__(self, chunks: Iterator[str]) -> None:
        super().__init__()
        self._chunks = chunks
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._pending = memoryview(chunk.encode())
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size

    def close(self) -> None:
        """Close the chunks too: stream_with_context then ends the request (and its session)."""
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()
        super().close()
