"""Worker density (issue 13): steps in flight per worker machine, against a local Chat
Completions server that answers in a fixed time and counts the calls it holds at once.

- `in_flight`: a build of >= 2,000 steps, rate limit off, the server answering in 1 s: steps/s,
  the server's peak of calls in flight, and the PSS of the Procfile worker's process tree,
  beside a baseline of today's model (one process per slot, 1 + 3 + 5 processes) in the same run.
- `rate_limit`: 20 calls per 2 s with 200 steps waiting: the sustained call rate against the
  limit, and the most calls any 2 s window at the server held.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from app.extensions import db
from app.jobs.queues import (
    BUILD_PATH_QUEUE,
    DEAD_LETTER_QUEUE,
    DECOMPOSE_QUEUE,
    GENERATE_KU_QUEUE,
    LESSON_PLANS_QUEUE,
)
from app.models import BuildStep
from bench.harness import Deployment, deployment, pss_kb, start_path_build, wait_build
from tests.fake_llm import USAGE, _schema_in_prompt, valid_answer
from tests.services import ProcessGroup, free_port

ROOT = Path(__file__).resolve().parent.parent
BASELINE_PROCESSES = {DECOMPOSE_QUEUE: 3, GENERATE_KU_QUEUE: 5}  # today's defaults, a process each


class SlowChatServer:
    """Answers every Chat Completions request after `latency_s`, holding as many at once as
    come (a thread each, a deep listen backlog), and counts them: in flight now, the peak, and
    when each arrived."""

    def __init__(self, latency_s: float) -> None:
        self.latency_s = latency_s
        self.in_flight = 0
        self.peak = 0
        self.arrivals: list[float] = []
        self.lock = threading.Lock()
        server_class = type("Server", (ThreadingHTTPServer,), {"request_queue_size": 2048})
        self.server = server_class(("127.0.0.1", free_port()), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/v1"

    def __enter__(self) -> SlowChatServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def reset(self) -> None:
        with self.lock:
            self.peak, self.arrivals = self.in_flight, []

    def _handler(self):  # type: ignore[no-untyped-def]
        chat = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as a real provider

            def do_POST(self) -> None:  # noqa: N802
                request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with chat.lock:
                    chat.arrivals.append(time.time())
                    chat.in_flight += 1
                    chat.peak = max(chat.peak, chat.in_flight)
                try:
                    time.sleep(chat.latency_s)
                    messages = request["messages"]
                    name = request.get("response_format", {}).get("json_schema", {}).get("name", "")
                    answer = valid_answer(
                        name or _schema_in_prompt(messages[1]["content"]), messages[1]["content"]
                    )
                    body = json.dumps(
                        {
                            "id": "chatcmpl-bench",
                            "object": "chat.completion",
                            "created": int(time.time()),
                            "model": "bench",
                            "usage": USAGE,
                            "choices": [
                                {
                                    "index": 0,
                                    "finish_reason": "stop",
                                    "message": {"role": "assistant", "content": json.dumps(answer)},
                                }
                            ],
                        }
                    ).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                finally:
                    with chat.lock:
                        chat.in_flight -= 1

            def log_message(self, *args: object) -> None:
                pass

        return Handler


def _llm(server: SlowChatServer) -> dict[str, str]:
    return {
        # The default lease, not the benchmarks' 3 s (set for quick recovery elsewhere): a worker
        # process with a hundred calls in flight on a 2-core machine renews its leases seconds
        # late at the peak, and a 3 s lease then lapses under live work.
        "JOB_LEASE_TTL_S": "30",
        "GENERATOR": "openai",
        "OPENAI_BASE_URL": server.base_url,
        "OPENAI_API_KEY": "sk-bench",
        "OPENAI_MODEL": "bench",
        "OPENAI_TIMEOUT_S": "60",
    }


def _steps_per_s(run: Deployment, build_id: str) -> tuple[int, float]:
    with run.app.app_context():
        count, first, last = db.session.execute(
            select(
                func.count(BuildStep.id), func.min(BuildStep.started_at), func.max(BuildStep.completed_at)
            ).where(BuildStep.build_id == build_id, BuildStep.status == "completed")
        ).one()
    return count, count / max(0.001, (last - first).total_seconds())


def _measure(run: Deployment, group_pids: list[int], server: SlowChatServer, concepts: int) -> dict[str, Any]:
    """Run one build; sample the worker tree's PSS throughout; the server counts its peak."""
    server.reset()
    peak_pss = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.5):
            peak_pss[0] = max(peak_pss[0], sum(pss_kb(pid) for pid in group_pids))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.monotonic()
    build = wait_build(run.app.test_client(), run.auth, start_path_build(run, concepts), 3600)
    wall = time.monotonic() - started
    done.set()
    sampler.join()
    steps, rate = _steps_per_s(run, build["id"])
    return {
        "status": build["status"],
        "steps": steps,
        "wall_s": round(wall, 1),
        "steps_per_s": round(rate, 1),
        "peak_calls_in_flight": server.peak,
        "worker_tree_pss_mb": round(peak_pss[0] / 1024, 1),
    }


def _baseline_workers(run: Deployment) -> list[ProcessGroup]:
    """Today's model: a process per slot (orchestrator, 3 decompose, 5 generate-ku)."""
    slots = [(BUILD_PATH_QUEUE, LESSON_PLANS_QUEUE, DEAD_LETTER_QUEUE)]
    for queue, count in BASELINE_PROCESSES.items():
        slots += [(queue,)] * count
    groups = []
    for n, queues in enumerate(slots):
        extra = [] if n == 0 else ["--no-recovery", "--no-scheduler"]
        groups.append(
            ProcessGroup(
                [sys.executable, "worker.py", "--queues", ",".join(queues), *extra],
                run.env,
                run.root / f"baseline-{n}.log",
            )
        )
    run.groups.extend(groups)
    return groups


def in_flight(quick: bool) -> dict[str, Any]:
    concepts = 60 if quick else 700  # 1 + N decompose + 2N unit steps (the server gives 2 sub-concepts)
    baseline_concepts = 5 if quick else 30
    threads = {"JOB_CONCURRENCY_DECOMPOSE": 100, "JOB_CONCURRENCY_GENERATE_KU": 250}
    results: dict[str, Any] = {}
    with SlowChatServer(latency_s=1.0) as server:
        with deployment(**_llm(server), JOB_RATE_LIMIT_MAX=0) as run:
            groups = _baseline_workers(run)
            time.sleep(3)
            results["baseline_process_per_slot"] = {
                "processes": len(groups),
                **_measure(run, [g.pid for g in groups], server, baseline_concepts),
            }
        with deployment(**_llm(server), JOB_RATE_LIMIT_MAX=0, **threads) as run:
            group = run.worker()  # the Procfile's `python worker.py`
            time.sleep(5)
            results["threads"] = {**threads, **_measure(run, [group.pid], server, concepts)}
    results["targets"] = {"steps_per_s": 100, "peak_calls_in_flight": 200, "worker_tree_pss_mb": 512}
    return results


def rate_limit(quick: bool) -> dict[str, Any]:
    concepts = 30 if quick else 100  # 1 + N + 2N calls; 200+ unit steps wait at once at full size
    limit, window_s = 20, 2.0
    with SlowChatServer(latency_s=0.2) as server:
        settings = {
            **_llm(server),
            "JOB_RATE_LIMIT_MAX": limit,
            "JOB_RATE_LIMIT_DURATION": int(window_s * 1000),
            "JOB_CONCURRENCY_DECOMPOSE": 100,
            "JOB_CONCURRENCY_GENERATE_KU": 200,
        }
        with deployment(**settings) as run:
            run.worker()
            time.sleep(5)
            server.reset()
            build = wait_build(run.app.test_client(), run.auth, start_path_build(run, concepts), 3600)
    arrivals = sorted(server.arrivals)
    sustained = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0])
    busiest = max(sum(1 for t in arrivals[i:] if t < start + window_s) for i, start in enumerate(arrivals))
    return {
        "status": build["status"],
        "calls": len(arrivals),
        "limit_per_s": limit / window_s,
        "sustained_calls_per_s": round(sustained, 2),
        "of_the_limit": round(sustained / (limit / window_s), 3),
        "most_calls_in_a_2s_window": busiest,
        "targets": {"of_the_limit": 0.95, "most_calls_in_a_2s_window": limit},
    }
