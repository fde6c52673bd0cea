"""Event streams in tests: a reader for one SSE response, and the Procfile's gevent web
command as a fixture (the streams' real server)."""

from __future__ import annotations

import json
import shlex
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.services import ROOT, ProcessGroup, free_port, wait_until


class EventReader:
    """Reads one SSE response on a thread: its events, its `retry:` and whether it ended."""

    def __init__(self, response: requests.Response) -> None:
        self.response = response
        self.events: list[dict[str, Any]] = []
        self.retry: int | None = None
        self.ended = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        current: dict[str, Any] = {}
        try:
            for line in self.response.iter_lines(chunk_size=1, decode_unicode=True):
                if line.startswith("retry: "):
                    self.retry = int(line[7:])
                elif line.startswith("id: "):
                    current["id"] = int(line[4:])
                elif line.startswith("event: "):
                    current["event"] = line[7:]
                elif line.startswith("data: "):
                    current["data"] = json.loads(line[6:])
                elif line == "" and current:
                    self.events.append(current)
                    current = {}
        except (requests.RequestException, OSError, ValueError, AttributeError):  # closed by the test
            pass
        self.ended.set()

    def ids(self) -> list[int]:
        return [event["id"] for event in self.events]

    def close(self) -> None:
        self.response.close()


@pytest.fixture
def procfile_web(service_env: dict[str, str], tmp_path: Path) -> Iterator[Callable[..., str]]:
    """Start the Procfile's `web` command (one process, as the Procfile sets no count)."""
    started: list[ProcessGroup] = []

    def _start(**extra: str) -> str:
        port = free_port()
        line = next(line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith("web:"))
        command = shlex.split(line.removeprefix("web:"), comments=True)
        # A short graceful timeout only so teardown does not wait 25 s on the streams still open
        # (test_web_shutdown.py tests the Procfile's own).
        argv = [sys.executable, "-m", *command, "--bind", f"127.0.0.1:{port}", "--graceful-timeout", "3"]
        env = {**service_env, "WEB_CONCURRENCY": "1", **extra}
        started.append(ProcessGroup(argv, env, tmp_path / f"web-{len(started)}.log"))
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: _answers(f"{base}/healthz"), timeout=30, message="gunicorn to answer")
        return base

    yield _start
    for group in started:
        group.stop()


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.RequestException:
        return False
