"""The shared rate limit across worker processes, the SSE stream, and dead-letter retry."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import requests
from sqlalchemy import select

from app.extensions import db
from app.models import GeneratorCall
from tests.helpers import create_path, start_build, wait_for_build
from tests.helpers.builds import failing_sub_concept

pytestmark = pytest.mark.slow


def test_the_rate_limit_holds_across_two_worker_processes(app, client, auth, workers):
    limit = {"JOB_RATE_LIMIT_MAX": "4", "JOB_RATE_LIMIT_DURATION": "2000"}
    workers(**limit)
    workers(**limit)
    path_id = create_path(client, auth, concepts=3)

    wait_for_build(client, auth, start_build(client, auth, path_id), timeout=120)

    with app.app_context():
        calls = sorted(db.session.scalars(select(GeneratorCall.called_at)))
    assert len(calls) > 8
    # Call times are read just before the limiter reads its own clock: allow 25 ms of jitter.
    window = timedelta(milliseconds=2000 - 25)
    busiest = max(sum(1 for t in calls if start <= t < start + window) for start in calls)
    assert busiest <= 4, f"{busiest} calls within one 2 s window"
    assert busiest == 4, "the limit should also be reached, or the test proves nothing"


def _read_events(response, stop_after_final: bool = True) -> list[dict]:  # type: ignore[no-untyped-def,type-arg]
    events, current = [], {}
    for line in response.iter_lines(decode_unicode=True):
        if line.startswith("id: "):
            current["id"] = int(line[4:])
        elif line.startswith("event: "):
            current["event"] = line[7:]
        elif line.startswith("data: "):
            current["data"] = json.loads(line[6:])
        elif line == "" and current:
            events.append(current)
            if stop_after_final and current["event"] == "completed":
                break
            current = {}
    return events


def test_the_stream_sends_progress_then_completed_and_a_reconnect_gets_only_what_it_missed(
    app, client, auth, workers, web
):
    path_id = create_path(client, auth, concepts=2)
    workers(GENERATOR_LATENCY_MS="150")
    build_id = start_build(client, auth, path_id)

    with requests.get(f"{web}/api/jobs/{build_id}/stream", headers=auth, stream=True, timeout=60) as live:
        assert live.headers["Content-Type"].startswith("text/event-stream")
        events = _read_events(live)

    assert events[-1]["event"] == "completed" and events[-1]["data"]["data"]["status"] == "completed"
    assert [e["event"] for e in events].count("progress") >= 3
    ids = [e["id"] for e in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    middle = ids[len(ids) // 2]
    resumed_headers = {**auth, "Last-Event-ID": str(middle)}
    with requests.get(
        f"{web}/api/jobs/{build_id}/stream", headers=resumed_headers, stream=True, timeout=60
    ) as again:
        replay = _read_events(again, stop_after_final=False)  # the server must end the stream itself
    assert [e["id"] for e in replay] == [i for i in ids if i > middle]


def test_a_dead_letter_is_retried_on_its_own_and_reopens_its_build(app, client, auth, workers):
    doomed = failing_sub_concept()
    path_id = create_path(client, auth, concepts=3)
    broken = workers(GENERATOR_FAIL_ON=doomed)
    build_id = start_build(client, auth, path_id)
    wait_for_build(client, auth, build_id, "failed")
    (letter,) = client.get("/api/dead-letter", headers=auth).get_json()
    broken.stop()
    workers()

    retried = client.post(f"/api/dead-letter/{letter['id']}/retry", headers=auth)

    assert retried.status_code == 202
    build = wait_for_build(client, auth, build_id)
    assert build["errorCount"] == 0 and build["progressPercent"] == 100
    (after,) = client.get("/api/dead-letter", headers=auth).get_json()
    assert after["retriedAt"] is not None
    again = client.post(f"/api/dead-letter/{letter['id']}/retry", headers=auth)
    assert again.status_code == 400
