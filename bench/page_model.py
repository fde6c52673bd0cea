"""A model of the build page as a browser runs it, for hundreds of pages from one asyncio loop
of raw sockets (bench/push_many.py measures it beside real Chromium pages).

What a modelled page does is read from templates/web/path.html, static/live.js and htmx 2.0 with
its SSE extension 2.2 (package.json), not guessed:
- load: `GET /paths/<id>` with the session cookie of a user signed in through the form, then the
  page's static files; the stream URL is the page's `sse-connect`, the fragment its panel's
  `hx-get`, the poll its `every Ns`;
- stream: an EventSource on that URL (`Accept: text/event-stream`, the cookie). When the server
  ends it, EventSource reconnects after `retry:` with Last-Event-ID. A refusal (not 200) closes it
  for good: live.js removes `sse-connect`, and the page polls;
- on each `progress`, `error` or `completed` event, `GET` the panel with `HX-Request`. While one
  is in flight htmx queues the newer one on the panel element ("queue last"), and the answer
  replaces that element, so the queued request is dropped (`issueAjaxRequest` skips an element
  no longer in the page); the new panel listens only once it settles (htmx's 20 ms).
  EventSource's own `error` (the stream ended or was refused) reaches the panel's `sse:error`
  listener too: one panel request per reconnect;
- `completed` closes the stream (`sse-close`); live.js asks for the panel once more, after the
  answer in flight settles, if that answer was still live. A final panel carries the tree's
  out-of-band `hx-trigger="load"`: one `GET /paths/<id>/tree`, then nothing more;
- poll: every N s from the panel's last settle, skipped while the stream is open (live.js's
  `htmx:confirm`), dropped while a request is in flight.
"""

from __future__ import annotations

import asyncio
import html
import math
import re
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any

from bench.sse import _request

# The events the panel's `hx-trigger` listens to (sse:progress, sse:error, sse:completed).
TRIGGERS = ("progress", "error", "completed")
REQUEST_TIMEOUT_S = 30.0
SETTLE_S = 0.02  # htmx's default settle delay
STATIC = re.compile(r'(?:src|href)="(/static/[^"]+)"')
SSE_CONNECT = re.compile(r'sse-connect="([^"]+)"')
PANEL = re.compile(r'<section id="panel"([^>]*)>', re.S)
HX_GET = re.compile(r'hx-get="([^"]+)"')
POLL = re.compile(r"every ([0-9.]+)s")
TREE = re.compile(r'id="tree"[^>]*hx-get="([^"]+)"', re.S)


@dataclass
class Counts:
    """What a set of pages made and received while open."""

    pages: int = 0
    seconds_open: float = 0.0  # summed over the pages: page-seconds
    events: int = 0
    panel_requests: int = 0  # the live region's GET: on an event, a reconnect, a refusal or a poll
    polls: int = 0  # of which by the poll
    tree_requests: int = 0
    stream_opens: int = 0
    errors: int = 0
    fragment_ms: list[float] = field(default_factory=list)

    def add(self, other: Counts) -> None:
        for name in SUMMED:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.fragment_ms += other.fragment_ms

    def since(self, earlier: Counts) -> Counts:
        """What came after `earlier`, a snapshot of the same pages."""
        later = Counts(fragment_ms=self.fragment_ms[len(earlier.fragment_ms) :])
        for name in SUMMED:
            setattr(later, name, getattr(self, name) - getattr(earlier, name))
        later.pages = self.pages
        return later

    def figures(self) -> dict[str, Any]:
        made = self.panel_requests + self.tree_requests
        minutes = self.seconds_open / 60 or math.nan  # page-minutes
        return {
            "pages": self.pages,
            "events_received": self.events,
            "panel_requests": self.panel_requests,
            "of_which_polls": self.polls,
            "tree_requests": self.tree_requests,
            "stream_opens": self.stream_opens,
            "requests_per_event": round(made / self.events, 3) if self.events else None,
            "requests_per_page_per_min": round(made / minutes, 2),
            "events_per_page_per_min": round(self.events / minutes, 2),
        }


SUMMED = (
    "pages",
    "seconds_open",
    "events",
    "panel_requests",
    "polls",
    "tree_requests",
    "stream_opens",
    "errors",
)


class Connection:
    """A page's connection for its requests, kept alive between them as a browser keeps it, and
    opened again once the server has closed it (gunicorn closes an idle one after 2 s)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, path: str, headers: dict[str, str]) -> tuple[int, str]:
        """(status, body); once more on a new connection if a kept one turns out closed."""
        reused = self.writer is not None
        try:
            return await asyncio.wait_for(self._exchange(path, headers), REQUEST_TIMEOUT_S)
        except (ConnectionError, asyncio.IncompleteReadError):
            self.close()
            if not reused:
                raise
        return await asyncio.wait_for(self._exchange(path, headers), REQUEST_TIMEOUT_S)

    async def _exchange(self, path: str, headers: dict[str, str]) -> tuple[int, str]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items())]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionResetError("closed by the server")
        length, closing = 0, False
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "content-length":
                length = int(value)
            elif name.lower() == "connection" and "close" in value.lower():
                closing = True
        body = await self.reader.readexactly(length)
        if closing:
            self.close()
        return int(status_line.split()[1]), body.decode(errors="replace")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


class ModelPage:
    """One open build page, doing what the browser does for it (see the module's docstring)."""

    def __init__(self, port: int, path_id: str, cookie: str) -> None:
        self.port, self.url, self.cookie = port, f"/paths/{path_id}", cookie
        self.counts = Counts(pages=1)
        self.connection = Connection(port)
        self.stream_answers: Counter[int] = Counter()
        self.stream_open = False  # live.js's `push-live` class
        self.in_flight = False
        self.final = False  # the panel was rendered without its live triggers
        self.refetch_when_settled = False
        self.swaps = 0
        self.stream_url = self.panel_url = ""
        self.poll_s = 3.0
        self.tasks: set[asyncio.Task[None]] = set()
        self.started = time.monotonic()

    def snapshot(self) -> Counts:
        return replace(
            self.counts, seconds_open=time.monotonic() - self.started, fragment_ms=[*self.counts.fragment_ms]
        )

    async def run(self) -> None:
        self.started = time.monotonic()
        try:
            await self._load()
            poller = asyncio.create_task(self._poll())
            await self._stream()
            await poller  # until the panel is final: then nothing listens any more
        except (OSError, ValueError, IndexError, TimeoutError, asyncio.IncompleteReadError):
            self.counts.errors += 1

    async def _load(self) -> None:
        status, page = await self.connection.get(self.url, {"Cookie": self.cookie})
        if status != 200:
            raise ValueError(f"page answered {status}")
        for asset in STATIC.findall(page):
            await self.connection.get(asset, {})
        self.stream_url = html.unescape(SSE_CONNECT.findall(page)[0])
        panel = PANEL.findall(page)[0]
        self.panel_url = html.unescape(HX_GET.findall(panel)[0])
        self.poll_s = float(POLL.findall(panel)[0])

    async def _stream(self) -> None:
        """EventSource: reconnect after `retry:` with Last-Event-ID, until `completed` or a refusal."""
        last_id, retry_s = "", 3.0
        while True:
            headers = {"Cookie": self.cookie, "Accept": "text/event-stream", "Cache-Control": "no-cache"}
            if last_id:
                headers["Last-Event-ID"] = last_id
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
            try:
                writer.write(_request(self.stream_url, headers))
                status = int((await reader.readline()).split()[1])
                self.stream_answers[status] += 1
                chunked = await _skip_headers(reader)
                if status != 200:
                    self.stream_open = False
                    self._trigger("refused")  # EventSource's `error` reaches the panel's sse:error
                    return  # CLOSED: live.js removes `sse-connect`, the page polls from now on
                self.stream_open = True
                self.counts.stream_opens += 1
                last_id, retry_s, completed = await self._read_events(reader, chunked, last_id, retry_s)
            finally:
                writer.close()
            self.stream_open = False
            if completed:
                return  # sse-close: the page closed it
            self._trigger("reconnect")  # the end is an `error` to the panel's sse:error listener
            await asyncio.sleep(retry_s)

    async def _read_events(
        self, reader: asyncio.StreamReader, chunked: bool, last_id: str, retry_s: float
    ) -> tuple[str, float, bool]:
        """Dispatch events as EventSource does, until the stream ends or `completed` closes it."""
        kind, data = "", False
        async for line in _lines(reader, chunked):
            if line:
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if name == "id":
                    last_id = value
                elif name == "event":
                    kind = value
                elif name == "data":
                    data = True
                elif name == "retry" and value.isdigit():
                    retry_s = int(value) / 1000
                continue
            if data and kind in TRIGGERS:
                self.counts.events += 1
                if kind == "completed":
                    self._on_completed()
                    return last_id, retry_s, True
                self._trigger("event")
            kind, data = "", False
        return last_id, retry_s, False

    def _on_completed(self) -> None:
        """sse-close's listener runs first: live.js's fetchFinalState; the panel's own listener
        then finds a request in flight, and its queued one is dropped."""
        if self.in_flight:
            self.refetch_when_settled = True
        else:
            self._trigger("event")

    def _trigger(self, cause: str) -> None:
        if self.final or self.in_flight:
            return  # nothing listens on a final panel; queued on the old panel, then dropped
        self.in_flight = True
        task = asyncio.create_task(self._fetch_panel(cause))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _fetch_panel(self, cause: str) -> None:
        headers = {"Cookie": self.cookie, "HX-Request": "true", "HX-Target": "panel", "HX-Trigger": "panel"}
        headers["HX-Current-URL"] = f"http://127.0.0.1:{self.port}{self.url}"
        self.counts.panel_requests += 1
        self.counts.polls += cause == "poll"
        started = time.perf_counter()
        try:
            status, body = await self.connection.get(self.panel_url, headers)
            self.counts.fragment_ms.append((time.perf_counter() - started) * 1000)
            if status != 200:
                raise ValueError(f"panel answered {status}")
        except (OSError, ValueError, IndexError, asyncio.IncompleteReadError):
            self.counts.errors += 1
            self.connection.close()
            self.in_flight = False
            return
        panel = PANEL.findall(body)
        final = bool(panel) and "hx-trigger" not in panel[0]
        # The answer replaces the panel at once; the new one is processed (listens to the stream,
        # starts its poll timer, fires its `load` triggers) when it settles, 20 ms later.
        await asyncio.sleep(SETTLE_S)
        self.final, self.in_flight = final, False
        self.swaps += 1
        if final:
            tree = TREE.findall(body)
            if tree:  # the out-of-band tree's hx-trigger="load"
                self.counts.tree_requests += 1
                await self.connection.get(
                    html.unescape(tree[0]), {"Cookie": self.cookie, "HX-Request": "true"}
                )
        elif self.refetch_when_settled:  # live.js, on htmx:afterSettle
            self.refetch_when_settled = False
            self._trigger("event")

    async def _poll(self) -> None:
        """htmx's `every N s`, restarted by each swap (a new panel, a new timer)."""
        while not self.final:
            swaps, born = self.swaps, time.monotonic()
            ticks = 1
            while swaps == self.swaps and not self.final:
                await asyncio.sleep(max(0.0, born + ticks * self.poll_s - time.monotonic()))
                ticks += 1
                if swaps == self.swaps and not self.stream_open:
                    self._trigger("poll")
            await asyncio.sleep(0)


async def _skip_headers(reader: asyncio.StreamReader) -> bool:
    """Read the response's headers; whether its body is chunked."""
    chunked = False
    while (line := await reader.readline()) not in (b"\r\n", b""):
        if line.lower().startswith(b"transfer-encoding:") and b"chunked" in line.lower():
            chunked = True
    return chunked


async def _lines(reader: asyncio.StreamReader, chunked: bool) -> AsyncIterator[str]:
    """The body's lines, de-chunked, until the server ends it."""
    buffer = b""
    while True:
        try:
            if chunked:
                size = int((await reader.readline()).split(b";")[0].strip() or b"0", 16)
                data = (await reader.readexactly(size + 2))[:-2] if size else b""
            else:
                data = await reader.read(8192)
        except (OSError, ValueError, asyncio.IncompleteReadError):
            return
        if not data:
            return
        *lines, buffer = (buffer + data).split(b"\n")
        for line in lines:
            yield line.rstrip(b"\r").decode(errors="replace")
