"""What every export shares: its formats, the schema version, chunking, JSON pieces written by
hand (so a document can be streamed), one-line Markdown text and a file name fit for any system."""

from __future__ import annotations

import enum
import json
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

SCHEMA_VERSION = 1  # raise it whenever a key of the JSON documents changes meaning or goes away
CHUNK_CHARS = 32 * 1024  # one write to the client; small pieces are gathered up to this size
BATCH_ROWS = 200  # rows fetched from the database at a time
FILENAME_STEM_CHARS = 80
FORBIDDEN_IN_FILE_NAMES = frozenset("*/:<>?\\|")  # and '"': Windows refuses them all


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
    def mimetype(self) -> str:
        return "text/markdown" if self is ExportFormat.MARKDOWN else "application/json"


@dataclass(frozen=True)
class Export:
    """A download: its headers and its body as a lazy stream of text chunks."""

    filename: str
    mimetype: str  # Werkzeug adds `; charset=utf-8` to text types
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


def attachment(title: str, kind: str, export_format: ExportFormat, chunks: Iterable[str]) -> Export:
    """The export of `title` as a file named `<title>-<kind>.<md|json>`."""
    return Export(download_name(title, kind, export_format), export_format.mimetype, chunked(chunks))


def download_name(title: str, kind: str, export_format: ExportFormat) -> str:
    """`<title>-<kind>.<md|json>`: the title's own letters kept, on one line, without what a file
    name cannot hold on some system (a double quote becomes a single one, the rest a space) and
    without leading dots (a hidden file). Werkzeug writes it into Content-Disposition."""
    fit = one_line("".join(map(_fit_for_a_file_name, title))).lstrip(". ")
    stem = fit[:FILENAME_STEM_CHARS].rstrip()
    return f"{stem}-{kind}.{export_format.value}" if stem else f"{kind}.{export_format.value}"


def _fit_for_a_file_name(char: str) -> str:
    if char == '"':
        return "'"
    # Category C: control and format characters (a right-to-left override could disguise the extension).
    if char in FORBIDDEN_IN_FILE_NAMES or unicodedata.category(char).startswith("C"):
        return " "
    return char


def readable_time(moment: datetime) -> str:
    """A stored (naive UTC) time for people, with its zone: '25 November 2026, 14:03 UTC'."""
    return f"{moment.day} {moment:%B %Y, %H:%M} UTC"
