"""Build event streams at scale, against the Procfile's own `web` command: idle streams hold no
thread, one Redis subscription per process, streams end (final build, bounded lifetime) and a
reconnect loses nothing, and a per-user cap on open streams."""

from __future__ import annotations

import shlex
import signal
import sys
import threading
import time

import pytest
import requests
from sqlalchemy import select

from app.api.stream import RETRY_MS, _EventStream
from app.extensions import db
from app.jobs.queues import get_redis
from app.models import BuildEvent
from app.pipelines.doorbell import DOORBELL_CHANNEL, BuildDoorbell
from app.pipelines.stream_slots import StreamSlot
from tests.helpers import create_path, start_build, wait_for_build
from tests.helpers.streams import EventReader
from tests.helpers.users import make_user
from tests.services import ROOT, ProcessGroup, free_port, wait_until

PASSWORD = "correct horse battery staple"  # make_user's
# More than the 8 threads the web process had before, and than its 15 database connections
# (an idle stream must hold neither); within the per-user cap of 20.
STREAMS = 20


def _paused_build(client, auth) -> str:  # type: ignore[no-untyped-def]
    """A build that will not move: no worker runs, and it is paused."""
    build_id = start_build(client, auth, create_path(client, auth, concepts=2))
    response = client.post(f"/api/jobs/{build_id}/pause", headers=auth)
    assert response.status_code == 200, response.get_json()
    return build_id


def _open(base: str, build_id: str, headers: dict[str, str]) -> EventReader:
    response = requests.get(f"{base}/api/jobs/{build_id}/stream", headers=headers, stream=True, timeout=10)
    assert response.status_code == 200, response.text
    return EventReader(response)


def _sign_in(base: str) -> int:
    session = requests.Session()
    page = session.get(f"{base}/sign-in", timeout=10).text
    token = page.split('name="csrf_token" type="hidden" value="')[1].split('"')[0]
    return session.post(
        f"{base}/sign-in",
        data={"email": "designer@example.com", "password": PASSWORD, "csrf_token": token},
        allow_redirects=False,
        timeout=10,
    ).status_code


@pytest.mark.slow
def test_healthz_and_sign_in_answer_while_more_streams_than_threads_are_open(client, auth, procfile_web):
    base = procfile_web()
    build_id = _paused_build(client, auth)

    readers = [_open(base, build_id, auth) for _ in range(STREAMS)]
    wait_until(lambda: all(reader.events for reader in readers), timeout=30, message="every stream's events")

    assert requests.get(f"{base}/healthz", timeout=10).json() == {"status": "ok"}
    assert _sign_in(base) == 302
    assert requests.get(f"{base}/api/jobs/{build_id}", headers=auth, timeout=10).json()["status"] == "paused"
    assert not any(reader.ended.is_set() for reader in readers), "a paused build's streams stay open"
    for reader in readers:
        reader.close()


def _subscribers(redis) -> set[str]:  # type: ignore[no-untyped-def]
    """The ids of the Redis connections that hold a subscription."""
    return {c["id"] for c in redis.client_list() if int(c["sub"]) + int(c["psub"]) > 0}


@pytest.mark.slow
def test_one_redis_subscription_serves_every_stream_of_a_process(app, client, auth, procfile_web):
    base = procfile_web()
    builds = [_paused_build(client, auth) for _ in range(3)]
    with app.app_context():  # other tests' apps in this process may hold subscriptions of their own
        redis = get_redis()
        subscribers_before = _subscribers(redis)
        listeners_before = redis.pubsub_numsub("build-events")[0][1]

    readers = [_open(base, builds[n % 3], auth) for n in range(STREAMS)]
    wait_until(lambda: all(reader.events for reader in readers), timeout=30, message="every stream's events")

    with app.app_context():
        new_subscribers = _subscribers(redis) - subscribers_before
        assert len(new_subscribers) == 1, new_subscribers
        assert redis.pubsub_numsub("build-events")[0][1] == listeners_before + 1
    for reader in readers:
        reader.close()


@pytest.mark.slow
def test_the_doorbell_brings_a_change_to_the_stream_with_the_safety_poll_far_away(
    app, client, auth, procfile_web
):
    base = procfile_web(SSE_SAFETY_POLL_S="600")
    build_id = _paused_build(client, auth)
    reader = _open(base, build_id, auth)
    wait_until(lambda: reader.events, timeout=10, message="the stream's first events")
    seen = len(reader.events)

    assert client.post(f"/api/jobs/{build_id}/resume", headers=auth).status_code == 200

    wait_until(lambda: len(reader.events) > seen, timeout=5, message="the resumed event on the stream")
    assert reader.events[-1]["data"]["data"]["status"] == "resumed"
    reader.close()


@pytest.mark.slow
def test_a_stream_of_a_final_build_sends_what_was_missed_and_ends_at_once(
    app, client, auth, workers, procfile_web
):
    base = procfile_web()
    workers()
    build_id = start_build(client, auth, create_path(client, auth, concepts=1))
    wait_for_build(client, auth, build_id)
    with app.app_context():
        ids = list(db.session.scalars(select(BuildEvent.id).where(BuildEvent.build_id == build_id)))

    everything = _open(base, build_id, auth)
    assert everything.ended.wait(10), "a final build's stream must end by itself"
    assert everything.ids() == ids and everything.events[-1]["event"] == "completed"

    middle = ids[len(ids) // 2]
    rest = _open(base, build_id, {**auth, "Last-Event-ID": str(middle)})
    assert rest.ended.wait(10)
    assert rest.ids() == [i for i in ids if i > middle]

    started = time.monotonic()
    after_final = requests.get(
        f"{base}/api/jobs/{build_id}/stream", headers={**auth, "Last-Event-ID": str(ids[-1])}, timeout=10
    )
    assert after_final.status_code == 204 and after_final.content == b""
    assert time.monotonic() - started < 5


@pytest.mark.slow
def test_a_stream_ends_after_its_lifetime_and_a_reconnect_gets_exactly_what_it_missed(
    app, client, auth, procfile_web
):
    base = procfile_web(SSE_MAX_STREAM_S="2")
    build_id = _paused_build(client, auth)

    first = _open(base, build_id, auth)
    assert first.ended.wait(10), "the stream must end once its lifetime is over"
    assert first.retry == 2000, "the stream tells the browser when to reconnect"
    assert client.post(f"/api/jobs/{build_id}/resume", headers=auth).status_code == 200

    second = _open(base, build_id, {**auth, "Last-Event-ID": str(first.ids()[-1])})
    assert second.ended.wait(10)

    with app.app_context():
        ids = list(db.session.scalars(select(BuildEvent.id).where(BuildEvent.build_id == build_id)))
    assert first.ids() + second.ids() == ids
    assert second.events[-1]["data"]["data"]["status"] == "resumed"


@pytest.mark.slow
def test_a_user_past_the_cap_on_open_streams_gets_a_429_and_other_users_do_not(
    app, client, auth, procfile_web
):
    base = procfile_web(SSE_MAX_STREAMS_PER_USER="2", SSE_KEEPALIVE_S="1")
    build_id = _paused_build(client, auth)
    held = [_open(base, build_id, auth), _open(base, build_id, auth)]

    refused = requests.get(f"{base}/api/jobs/{build_id}/stream", headers=auth, timeout=10)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "too_many_streams"
    assert refused.json()["success"] is False
    assert refused.headers["Retry-After"] == "2"

    admin = make_user(app, "admin@example.com", admin=True)
    _open(base, build_id, admin).close()  # another user's count is their own

    held[0].close()  # the server notices at its next keep-alive and frees the slot
    wait_until(
        lambda: (
            requests.get(
                f"{base}/api/jobs/{build_id}/stream", headers=auth, stream=True, timeout=10
            ).status_code
            == 200
        ),
        timeout=10,
        interval=0.5,
        message="the closed stream's slot to be freed",
    )


@pytest.mark.slow
def test_a_slot_left_by_a_crashed_process_lapses_on_its_own(app, auth):
    with app.app_context():
        redis = get_redis()
        assert StreamSlot(redis, 1, lapse_s=1).claim(cap=1)  # never released: its process "died"
        assert not StreamSlot(redis, 1, lapse_s=1).claim(cap=1)
        time.sleep(1.2)  # the behaviour under test: the slot lapses after its 1 s, by itself
        assert StreamSlot(redis, 1, lapse_s=1).claim(cap=1)


@pytest.mark.parametrize(
    ("header", "query"),
    [({"Last-Event-ID": "9223372036854775808"}, ""), ({}, "?lastEventId=²"), ({"Last-Event-ID": "-1"}, "")],
)
def test_a_last_event_id_that_is_not_an_event_id_is_refused_with_400(client, auth, header, query):
    build_id = _paused_build(client, auth)
    response = client.get(f"/api/jobs/{build_id}/stream{query}", headers={**auth, **header})
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_last_event_id"


@pytest.mark.slow
def test_a_live_stream_ends_by_itself_once_its_build_turns_final(client, auth, procfile_web):
    base = procfile_web(SSE_SAFETY_POLL_S="600")
    build_id = _paused_build(client, auth)
    reader = _open(base, build_id, auth)
    wait_until(lambda: reader.events, timeout=10, message="the stream's first events")

    assert client.post(f"/api/jobs/{build_id}/cancel", headers=auth).status_code == 200

    assert reader.ended.wait(10), "the stream must end after the build's final event"
    assert reader.events[-1]["event"] == "completed"
    assert reader.events[-1]["data"]["data"]["status"] == "cancelled"


@pytest.mark.slow
def test_the_doorbell_subscribes_again_after_losing_redis_and_then_wakes_every_stream(app):
    with app.app_context():
        redis = get_redis()
        others = redis.pubsub_numsub(DOORBELL_CHANNEL)[0][1]  # other tests' apps in this process
        doorbell = BuildDoorbell(redis)
        with doorbell.bell("some-build") as bell:
            listening = others + 1
            wait_until(
                lambda: redis.pubsub_numsub(DOORBELL_CHANNEL)[0][1] == listening, message="the subscription"
            )
            wait_until(bell.is_set, message="the ring every (re)subscription makes")
            bell.clear()

            redis.client_kill_filter(_type="pubsub")  # every subscription, the others' too

            assert bell.wait(10), "a message may have been lost in the gap: every stream must read again"
            wait_until(lambda: redis.pubsub_numsub(DOORBELL_CHANNEL)[0][1] >= 1, message="a new subscription")
            bell.clear()
            redis.publish(DOORBELL_CHANNEL, "another-build")
            assert not bell.wait(0.5), "another build's ring wakes only that build's streams"
            redis.publish(DOORBELL_CHANNEL, "some-build")
            assert bell.wait(5)
        doorbell.close()  # its listener stops instead of reconnecting to this test's Redis forever


def test_a_stream_ends_after_its_read_when_the_server_stops_even_if_the_stops_ring_was_cleared(app):
    """The stop (doorbell.close) sets `closing`, then rings. A ring that lands between a stream's
    wake-up and its next `clear()` is wiped by that clear; the stream must still see `closing`
    before it waits again, or it waits for its safety poll (20 s) and holds the stop with it.
    Here `closing` is set and the ring never comes, as after such a clear."""
    app.config.update(SSE_SAFETY_POLL_S=600)
    with app.app_context():
        doorbell = BuildDoorbell(get_redis())
        doorbell.closing = True
        stream = _EventStream("some-build", lambda after_id, with_status: (False, []), 0, None, app.config)
        said: list[str] = []
        reader = threading.Thread(target=lambda: said.extend(stream.run(doorbell)), daemon=True)
        reader.start()
        reader.join(5)

    assert not reader.is_alive(), "the stream waited for a ring that had already been cleared"
    assert said == [f"retry: {RETRY_MS}\n\n"]


@pytest.mark.slow
def test_sigterm_ends_open_streams_at_once_instead_of_holding_the_stop_for_the_graceful_timeout(
    client, auth, service_env, tmp_path
):
    """The Procfile's own command (--graceful-timeout 25): a stream never ends by itself, so
    without gunicorn.conf.py's hook a SIGTERM (a deploy, Ctrl-C of `make run` with a page open)
    waited the whole 25 s for it."""
    build_id = _paused_build(client, auth)
    port = free_port()
    line = next(line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith("web:"))
    argv = [sys.executable, "-m", *shlex.split(line.removeprefix("web:"), comments=True)]
    web = ProcessGroup(
        [*argv, "--bind", f"127.0.0.1:{port}"], {**service_env, "WEB_CONCURRENCY": "1"}, tmp_path / "web.log"
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: _answers(f"{base}/healthz"), timeout=30, message="gunicorn to answer")
        reader = _open(base, build_id, auth)
        wait_until(lambda: reader.retry is not None, message="the stream to open")

        started = time.monotonic()
        web.process.send_signal(signal.SIGTERM)
        web.process.wait(timeout=20)
        stopped_s = time.monotonic() - started
        assert reader.ended.wait(5), "the stream ended with the server"
        assert stopped_s < 10, f"gunicorn took {stopped_s:.1f} s to stop with a stream open"
        assert web.process.returncode == 0
        assert "Traceback" not in web.output(), "the stop is quiet (no error from the signal handler)"
    finally:
        web.stop()


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.RequestException:
        return False
