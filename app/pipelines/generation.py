"""Every generator call goes through here: the shared limits, then a record of the call.

While the claimed row (a step or a module) waits for a slot, the row says so and when the next
slot should come; the time it waited is added to it, so its duration splits into waiting and
working. One log line per wait.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from flask import Flask, current_app
from sqlalchemy import case, insert, update
from sqlalchemy.exc import SQLAlchemyError

from app.database import commit_keeping_loaded
from app.extensions import db
from app.generators import Generator, ProgressCallback
from app.generators.factory import build_generator
from app.jobs.claims import Claim, run_under_lease
from app.jobs.limiter import calls_owned_by, takes_fair_turns, wait_for_slot, waits_reported_to
from app.models import Build, GeneratorCall
from app.pipelines.call_owner import owner_of_call
from app.pipelines.provider_services import PipelineProviderServices

log = logging.getLogger(__name__)
T = TypeVar("T")
# A new estimate of the next slot is written only when it moved this much: workers racing for
# the same slot re-estimate often, and a poll shows whole seconds anyway.
NEXT_SLOT_TOLERANCE_S = 1.0


def build_pipeline_generator(config: Any, fresh: bool = False, regeneration: int = 0) -> Generator:
    """The configured generator, given the pipelines' limiter, memo and shared notes."""
    services = PipelineProviderServices(config)
    return build_generator(config, fresh=fresh, services=services, regeneration=regeneration)


def call_generator(
    kind: str,
    call: Callable[[Generator], T],
    regeneration: int = 0,
    work: Claim | None = None,
    **ids: Any,
) -> T:
    """Make one generation with the configured generator, within the shared limits, and record
    it with `ids` (build_id, step_id, workflow_id, module_id), the model and the tokens used.
    `regeneration`: 0 may reuse stored answers; n ≥ 1 asks the model again, for the n-th fresh
    build or run of the path or workflow (the offline generator then words its drafts the n-th way).
    `work`, the claim on the step or module the call is for, is told of every wait.
    The caller's transaction ends here (see `release_connection`): call it with nothing uncommitted."""
    config = current_app.config
    # Read before the connection goes back (nothing reads during waits), and only when it is used.
    owner = owner_of_call(ids) if takes_fair_turns(config) else None
    release_connection()
    generator = build_pipeline_generator(config, fresh=regeneration > 0, regeneration=regeneration)
    waits = RateLimitWaits(work, kind)
    try:
        with waits_reported_to(waits), calls_owned_by(owner):
            return _call_and_record(config, generator, kind, call, ids, waits)
    finally:
        waits.written()


def release_connection() -> None:
    """End the session's transaction, giving its connection back to the pool, before seconds of
    waiting on the limiter and the model: steps in flight then hold no connections, so the pool
    and PostgreSQL's max_connections stay small however many wait. The rows already loaded stay
    loaded (not expired), so the step does not read them again; its next statement begins anew."""
    commit_keeping_loaded()


def generate_under_lease(
    work: Claim,
    kind: str,
    call: Callable[[Generator, ProgressCallback], T],
    regeneration: int,
    watch_cancel: bool = False,
    **ids: Any,
) -> T:
    """The generation of a claimed step or module, as both pipelines make it: its lease renewed
    and its progress stored while the generator works (with `watch_cancel`, interrupted once the
    row is cancelled), the call limited and recorded."""
    return run_under_lease(
        work,
        lambda progress: call_generator(
            kind, lambda generator: call(generator, progress), regeneration=regeneration, work=work, **ids
        ),
        watch_cancel=watch_cancel,
    )


def _call_and_record(
    config: Any,
    generator: Generator,
    kind: str,
    call: Callable[[Generator], T],
    ids: dict[str, Any],
    waits: RateLimitWaits,
) -> T:
    asked = time.time()
    # A generator that talks to a provider takes a slot per HTTP request itself: its waits are
    # inside the call, and counted apart from its working time.
    self_limiting = getattr(generator, "self_limiting", False)
    admitted = asked if self_limiting else wait_for_slot(config)
    waited_before_call_ms = waits.waited_ms
    started = time.monotonic()
    try:
        return call(generator)
    finally:
        waited_in_call_ms = waits.waited_ms - waited_before_call_ms
        usage = getattr(generator, "usage", None)
        record = {
            "model": usage.model if usage else config["GENERATOR"],
            "prompt_tokens": usage.prompt_tokens if usage else 0,
            "completion_tokens": usage.completion_tokens if usage else 0,
            "memo_hit": usage.memo_hit if usage else False,
        }
        with db.engine.begin() as conn:  # its own transaction: the caller's stays untouched
            conn.execute(
                insert(GeneratorCall).values(
                    kind=kind,
                    called_at=datetime.fromtimestamp(admitted, UTC).replace(tzinfo=None),
                    waited_ms=max(0, int((admitted - asked) * 1000)) + waited_in_call_ms,
                    duration_ms=max(0, int((time.monotonic() - started) * 1000) - waited_in_call_ms),
                    **record,
                    **ids,
                )
            )
            if ids.get("build_id"):
                conn.execute(_add_to_build_usage(ids["build_id"], **record))


def _add_to_build_usage(
    build_id: str, model: str, prompt_tokens: int, completion_tokens: int, memo_hit: bool
) -> Any:
    """Add one call to the build's usage counters in SQL (no read-modify-write)."""
    listed = f",{model},"
    models = Build.usage_models
    return (
        update(Build)
        .where(Build.id == build_id)
        .values(
            usage_calls=Build.usage_calls + 1,
            usage_memo_hits=Build.usage_memo_hits + int(memo_hit),
            usage_prompt_tokens=Build.usage_prompt_tokens + prompt_tokens,
            usage_completion_tokens=Build.usage_completion_tokens + completion_tokens,
            usage_models=case(
                (models.contains(listed, autoescape=True), models),
                (models == "", listed),
                else_=models + listed[1:],
            ),
        )
    )


class RateLimitWaits:
    """Counts one generation's waits for the limiter and logs each once; with `work`, also keeps
    the claimed row's: `rate_limit_next_slot_at` while it waits, `rate_limit_waited_ms` summed
    when it goes on. Writes in their own transactions, fenced by the claim, like the lease
    renewals.

    The write that ends a wait runs beside the call, not before it: a write can wait on a busy
    database for a long moment, and a call admitted by the limiter but held back that long reaches
    the provider late, in the provider's next window with the calls admitted after it: one too
    many there. The writes stay in order (each waits for the one before), and `written()` waits
    for the last before the step goes on to store."""

    def __init__(self, work: Claim | None, kind: str) -> None:
        self.work, self.kind = work, kind
        self.since: float | None = None
        self.shown_slot_at: float | None = None
        self.waited_ms = 0
        self._writing: threading.Thread | None = None

    def waiting(self, next_slot_at: float) -> None:
        now = time.time()
        if self.since is None:
            self.since = now
            log.info(
                "%s: waiting for the AI provider's rate limit; next call in ~%.0f s",
                self.kind,
                max(0.0, next_slot_at - now),
            )
        if self.shown_slot_at is None or abs(next_slot_at - self.shown_slot_at) >= NEXT_SLOT_TOLERANCE_S:
            self.shown_slot_at = next_slot_at
            self._write(
                rate_limit_next_slot_at=datetime.fromtimestamp(next_slot_at, UTC).replace(tzinfo=None)
            )

    def done(self) -> None:
        if self.since is None:
            return
        waited_ms = int((time.time() - self.since) * 1000)
        self.since = self.shown_slot_at = None
        self.waited_ms += waited_ms
        if self.work is not None:
            self.written()
            app = current_app._get_current_object()  # type: ignore[attr-defined]
            values = {
                "rate_limit_next_slot_at": None,
                "rate_limit_waited_ms": self.work.model.rate_limit_waited_ms + waited_ms,
            }
            self._writing = threading.Thread(
                target=self._write_in, args=(app, values), name="rate-limit-wait-record", daemon=True
            )
            self._writing.start()

    def written(self) -> None:
        """Wait for the record of the last wait to be written."""
        if self._writing is not None:
            self._writing.join()
            self._writing = None

    def _write_in(self, app: Flask, values: dict[str, Any]) -> None:
        with app.app_context():
            self._execute(values)

    def _write(self, **values: Any) -> None:
        if self.work is not None:
            self.written()
            self._execute(values)

    def _execute(self, values: dict[str, Any]) -> None:
        """Best effort: a database blip must not fail the call it reports on."""
        assert self.work is not None
        try:
            with db.engine.begin() as conn:
                conn.execute(update(self.work.model).where(self.work.held).values(**values))
        except SQLAlchemyError:
            log.warning("could not record a wait for the rate limit", exc_info=True)
