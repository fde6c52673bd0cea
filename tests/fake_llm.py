"""A real local HTTP server speaking the Chat Completions protocol, for the tests of
GENERATOR=openai: it answers with valid JSON for whichever schema it is asked for, or misbehaves
as a test scripts it (invalid output, 429, 500, slowness, 401), and logs every request."""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.services import free_port

USAGE = {"prompt_tokens": 50, "completion_tokens": 20, "total_tokens": 70}
MODEL = "fake-model-1"


def valid_answer(name: str, prompt: str) -> dict[str, Any]:
    """Content that validates against the schema `name` (the prompt template's name)."""
    if name == "concepts":
        count = int(m.group(1)) if (m := re.search(r"exactly (\d+)", prompt)) else 3
        return {
            "concepts": [
                {"name": f"Server concept {i + 1}", "description": "From the server."} for i in range(count)
            ]
        }
    if name == "sub_concepts":
        return {
            "sub_concepts": [
                {
                    "name": f"Server sub-concept {i + 1} of {_quoted(prompt)}",
                    "description": "From the server.",
                }
                for i in range(2)
            ]
        }
    if name == "knowledge_units":
        return {
            "knowledge_units": [
                {
                    "title": f"Server unit {i + 1}",
                    "kind": "explanation",
                    "content": "Content from the server.",
                }
                for i in range(2)
            ]
        }
    minutes = int(m.group(1)) if (m := re.search(r"exactly (\d+) minutes", prompt)) else 60
    return {
        "lesson_plans": [
            {
                "title": "Server lesson",
                "objectives": ["Explain the server's idea"],
                "activities": [{"name": "Talk", "kind": "lecture", "duration_minutes": minutes}],
                "assessment": "A quiz.",
                "duration_minutes": minutes,
            }
        ]
    }


def _schema_in_prompt(prompt: str) -> str:
    """Without a named json_schema, the answer's one property (concepts, sub_concepts…) is the
    name: the prompt ends with the schema."""
    schema = json.loads(prompt.split("JSON Schema:\n", 1)[1])
    return next(iter(schema["properties"]))


def _quoted(prompt: str) -> str:
    match = re.search(r'Concept \d+ is "([^"]+)"', prompt)
    return match.group(1) if match else "a concept"


class _ListeningServer(ThreadingHTTPServer):
    request_queue_size = 1024  # hundreds of calls connecting at once are not turned away to retry


class FakeChatServer:
    """`mode` says how to misbehave: valid, invalid_once, always_invalid, rate_limit_once,
    error_twice, slow_once, unauthorized; no_json_schema (JSON mode only, as many local
    servers) and no_response_format (refuses any response_format) answer 400 as such servers do.
    It keeps connections alive (HTTP/1.1) and counts those it accepted in `connections`. With a
    `gate`, every request waits for the gate to open before it is answered; `waiting` counts them."""

    def __init__(self, mode: str = "valid", slow_s: float = 3.0, gate: threading.Event | None = None) -> None:
        self.mode, self.slow_s, self.gate = mode, slow_s, gate
        self.log: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.connections = 0
        self.waiting = 0
        self.server = _ListeningServer(("127.0.0.1", free_port()), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/v1"

    def __enter__(self) -> FakeChatServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def answered(self) -> list[dict[str, Any]]:
        return [entry for entry in self.log if entry["status"] == 200]

    def _decide(self, number: int, repair: bool, format_type: str) -> tuple[int, dict[str, str], str]:
        """(status, headers, what) for the `number`th request (1-based)."""
        mode = self.mode
        if mode == "unauthorized":
            return 401, {}, "error"
        if (mode == "no_json_schema" and format_type == "json_schema") or (
            mode == "no_response_format" and format_type != "none"
        ):
            return 400, {}, f"response_format type {format_type} is not supported"
        if mode == "rate_limit_once" and number == 1:
            return 429, {"Retry-After": "1"}, "error"
        if mode == "error_twice" and number <= 2:
            return 500, {}, "error"
        if mode == "slow_once" and number == 1:
            return 200, {}, "slow"
        if mode == "always_invalid" or (mode == "invalid_once" and not repair):
            return 200, {}, "invalid"
        return 200, {}, "valid"

    def _wait_at_gate(self, gate: threading.Event) -> None:
        with self.lock:
            self.waiting += 1
        gate.wait(60)
        with self.lock:
            self.waiting -= 1

    def _handler(self):  # type: ignore[no-untyped-def]
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real providers do

            def setup(self) -> None:
                super().setup()
                with fake.lock:
                    fake.connections += 1

            def do_POST(self) -> None:  # noqa: N802
                request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                messages = request["messages"]
                format_type = request.get("response_format", {}).get("type", "none")
                name = request.get("response_format", {}).get("json_schema", {}).get("name", "")
                name = name or _schema_in_prompt(messages[1]["content"])
                with fake.lock:
                    number = len(fake.log) + 1
                    status, headers, what = fake._decide(number, len(messages) > 2, format_type)
                    fake.log.append(
                        {
                            "time": time.time(),
                            "status": status,
                            "what": what,
                            "schema": name,
                            "format": format_type,
                            "tokens": USAGE["total_tokens"] if status == 200 else 0,
                            "authorization": self.headers.get("Authorization"),
                        }
                    )
                if what == "slow":
                    time.sleep(fake.slow_s)
                if fake.gate is not None:
                    fake._wait_at_gate(fake.gate)
                if status != 200:
                    message = what if status == 400 else f"fake {status}"
                    self._send(status, {"error": {"message": message, "type": "error"}}, headers)
                    return
                prompt = messages[1]["content"]
                content = (
                    "this is { not json" if what == "invalid" else json.dumps(valid_answer(name, prompt))
                )
                self._send(
                    200,
                    {
                        "id": f"chatcmpl-{number}",
                        "object": "chat.completion",
                        "created": int(time.time()),
                        "model": MODEL,
                        "usage": USAGE,
                        "choices": [
                            {
                                "index": 0,
                                "finish_reason": "stop",
                                "message": {"role": "assistant", "content": content},
                            }
                        ],
                    },
                )

            def _send(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                try:
                    self.wfile.write(data)
                except BrokenPipeError:
                    pass

            def log_message(self, *args: object) -> None:
                pass

        return Handler
