"""What every export shares: its formats, the schema version, chunking, JSON pieces written by
hand (so a document can be streamed), one-line Markdown text and a safe attachment filename."""

from __future__ import annotations

import enum
import json
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

SCHEMA_VERSION = 1  # raise it whenever a key of the JSON documents changes meaning or goes away
CHUNK_CHARS = 32 * 1024  # one write to the client; small pieces are gathered up to this size
BATCH_ROWS = 200  # rows fetched from the database at a time
FILENAME_STEM_CHARS = 80


class ExportFormat(enum.StrEnum):
    MARKDOWN = "md"
    JSON = "json"

    @classmethod
    def parse(cls, value: str | None) -> ExportFormat:
        """The format a query string asks for (JSON when it asks for none); ValueError otherwise."""
        try:
            return cls((value or cls.JSON.value).strip().lower())
        except ValueError:
            raise ValueError(f"format must be 'md' or 'json', not {value!r}.") from None

    @property
    def content_type(self) -> str:
        return "text/markdown; charset=utf-8" if self is ExportFormat.MARKDOWN else "application/json"


@dataclass(frozen=True)
class Export:
    """A download: its headers and its body as a lazy stream of text chunks."""

    filename: str
    content_disposition: str
    content_type: str
    chunks: Iterator[str]


def chunked(pieces: Iterable[str], size: int = CHUNK_CHARS) -> Iterator[str]:
    """Gather small pieces into chunks of about `size` characters."""
    buffer: list[str] = []
    length = 0
    for piece in pieces:
        buffer.append(piece)
        length += len(piece)
        if length >= size:
            yield "".join(buffer)
            buffer, length = [], 0
    if buffer:
        yield "".join(buffer)


def dump(value: Any) -> str:
    """JSON text, UTF-8 letters kept as they are."""
    return json.dumps(value, ensure_ascii=False)


def open_object(fields: dict[str, Any], list_key: str) -> str:
    """`{"a": 1, ..., "list_key": [` — an object whose last member is a list still to be written."""
    return dump(fields)[:-1] + f", {dump(list_key)}: ["


def separator(index: int) -> str:
    """What goes before the list item at `index`: a comma after the first, and a line each."""
    return "\n" if index == 0 else ",\n"


def close_object(fields: dict[str, Any]) -> str:
    """`], "a": 1, ...}` — closes the list `open_object` left open, then writes the last members."""
    return "]" + (", " + dump(fields)[1:] if fields else "}")


def one_line(text: str | None) -> str:
    """Text for a Markdown heading or list item: whitespace, newlines included, collapsed."""
    return " ".join((text or "").split())


def _ascii_stem(title: str) -> str:
    folded = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "-", folded.lower()).strip("-")[:FILENAME_STEM_CHARS].strip("-")


def attachment(title: str, kind: str, export_format: ExportFormat, chunks: Iterable[str]) -> Export:
    """The export of `title` as a file named `<title as ASCII>-<kind>.<md|json>`.

    The plain `filename` is ASCII letters, digits and dashes only; `filename*` (RFC 6266) keeps
    the title's own letters, percent-encoded, so no quote, newline or semicolon gets through.
    """
    stem = _ascii_stem(title)
    filename = f"{stem}-{kind}.{export_format.value}" if stem else f"{kind}.{export_format.value}"
    readable = re.sub(r"[\x00-\x1f\x7f/\\]+", " ", one_line(title))[:FILENAME_STEM_CHARS].strip()
    utf8_name = f"{readable}-{kind}.{export_format.value}" if readable else filename
    disposition = f"attachment; filename=\"{filename}\"; filename*=UTF-8''{quote(utf8_name, safe='')}"
    return Export(filename, disposition, export_format.content_type, chunked(chunks))


def readable_time(moment: datetime) -> str:
    """A stored (naive UTC) time for people, with its zone: '25 November 2026, 14:03 UTC'."""
    return f"{moment.day} {moment:%B %Y, %H:%M} UTC"
