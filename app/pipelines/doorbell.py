"""The listening side of the build doorbell: ONE Redis subscription per web process, fanned out
to every stream of that process that waits on the build whose id was published.

Workers publish a build's id on one channel after each commit that added events
(`learning_paths.events.ring`). A stream registers a bell here before its first read of the database,
then sleeps on it: it reads again only when its own build's bell rings (or its slow safety poll
comes due), so a thousand idle streams cost no queries and hold no Redis connection each.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from redis import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

DOORBELL_CHANNEL = "build-events"  # a build's id, "run:<id>" for a lesson-plan run

EVERY = "*"  # the key of a bell rung by every publish (the admin queue's stream)
RECONNECT_DELAY_S = 1.0
LISTEN_TIMEOUT_S = 5.0  # below the client's socket timeout, so a quiet channel is not an error


class BuildDoorbell:
    """Per process: build id -> the bells of the streams waiting on it, and one listener."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._bells: dict[str, set[threading.Event]] = {}
        self._lock = threading.Lock()
        self._listener_pid: int | None = None
        self.closing = False

    @contextmanager
    def bell(self, build_id: str) -> Iterator[threading.Event]:
        """A bell that is set whenever the build's events may have changed."""
        bell = threading.Event()
        with self._lock:
            self._bells.setdefault(build_id, set()).add(bell)
        # Registered first: the listener rings every bell once it has subscribed, and a bell added
        # after that ring would sleep through whatever was published before the subscription.
        self._ensure_listener()
        try:
            yield bell
        finally:
            with self._lock:
                waiting = self._bells.get(build_id, set())
                waiting.discard(bell)
                if not waiting:
                    self._bells.pop(build_id, None)

    def ring(self, build_id: str | None = None) -> None:
        """Wake the streams of one build, or of every build (after a gap in the subscription)."""
        with self._lock:
            if build_id is None:
                bells = [bell for group in self._bells.values() for bell in group]
            else:
                bells = [*self._bells.get(build_id, ()), *self._bells.get(EVERY, ())]
        for bell in bells:
            bell.set()

    def close(self) -> None:
        """The process is stopping: wake every stream so it ends now (its browser reconnects to
        another process with Last-Event-ID) instead of holding the stop for the graceful timeout."""
        self.closing = True
        self.ring()

    def _ensure_listener(self) -> None:
        """Start the listener once per process (a forked gunicorn worker starts its own)."""
        with self._lock:
            if self._listener_pid == os.getpid():
                return
            self._listener_pid = os.getpid()
        threading.Thread(target=self._listen_forever, name="build-doorbell", daemon=True).start()

    def _listen_forever(self) -> None:
        while not self.closing:
            try:
                self._listen()
            except (RedisError, OSError) as exc:
                if self.closing:
                    return
                log.warning("build doorbell lost its Redis subscription (%s); reconnecting", exc)
            time.sleep(RECONNECT_DELAY_S)

    def _listen(self) -> None:
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        try:
            pubsub.subscribe(DOORBELL_CHANNEL)
            self.ring()  # anything published while not subscribed was missed: everyone reads
            while not self.closing:
                message = pubsub.get_message(timeout=LISTEN_TIMEOUT_S)
                if message and message.get("type") == "message":
                    self.ring(_decode(message["data"]))
        finally:
            pubsub.close()


def _decode(data: bytes | str) -> str:
    return data.decode() if isinstance(data, bytes) else data
