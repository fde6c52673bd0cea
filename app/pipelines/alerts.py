"""Alerts: each dead-lettered step and each failed build is POSTed to ALERT_WEBHOOK_URL as JSON
(with a Slack-compatible `text`). They run as jobs on the dead-letter queue, off the steps' path,
with a timeout; a receiver that is down is logged and never fails or blocks a worker."""

from __future__ import annotations

import logging
from typing import Any

import requests
from flask import current_app
from redis.exceptions import RedisError

from app.extensions import db
from app.jobs.enqueue import enqueue_unique
from app.jobs.queues import DEAD_LETTER_QUEUE
from app.models import Build, DeadLetter
from app.seed_names import alert_json, dead_letter_json

log = logging.getLogger(__name__)


def queue_alert(kind: str, subject_id: str | int) -> None:
    """Enqueue the alert job for a dead letter or a failed build (after its commit)."""
    func = announce_dead_letter if kind == "dead-letter" else announce_failed_build
    try:
        enqueue_unique(DEAD_LETTER_QUEUE, func, subject_id, job_id=f"alert-{kind}-{subject_id}")
    except RedisError:
        log.warning("could not queue the %s alert for %s", kind, subject_id)


def post_alert(payload: dict[str, Any]) -> bool:
    """POST the alert if a webhook is configured; True if the receiver took it."""
    url = current_app.config["ALERT_WEBHOOK_URL"]
    if not url:
        return False
    try:
        response = requests.post(url, json=payload, timeout=current_app.config["ALERT_TIMEOUT_S"])
        response.raise_for_status()
    except requests.RequestException as exc:
        log.warning("alert to the webhook failed (%s): %s", type(exc).__name__, payload["text"])
        return False
    return True


def announce_dead_letter(letter_id: int) -> bool:
    """The dead-letter queue's job: log a step that failed for good and send its alert."""
    letter = db.session.get(DeadLetter, letter_id)
    if letter is None:
        return False
    text = (
        f"Dead letter {letter.id}: {letter.step.type} '{letter.step.entity_name}' of build "
        f"{letter.build_id} failed for good ({letter.category}): {letter.error}"
    )
    log.error(text)
    return post_alert(
        alert_json(
            {
                "text": text,
                "event": "dead_letter",
                "deadLetter": dead_letter_json(letter.to_dict()),
                "buildId": letter.build_id,
            }
        )
    )


def announce_failed_build(build_id: str) -> bool:
    """Send the alert of a build that ended failed."""
    build = db.session.get(Build, build_id)
    if build is None:
        return False
    text = f"Build {build.id} of '{build.path.name}' failed: {build.error}"
    log.error(text)
    return post_alert(
        alert_json(
            {
                "text": text,
                "event": "build_failed",
                "buildId": build.id,
                "pathId": build.path_id,
                "error": build.error,
                "errorCount": build.error_count,
            }
        )
    )
