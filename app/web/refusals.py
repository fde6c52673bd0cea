"""How the pages say a change the pipelines refuse: one mapping for the web and admin pages,
as app/api/control_errors.py is for the API. The page shows the words beside the control and
answers with the status; nothing has changed."""

from __future__ import annotations

from redis.exceptions import RedisError

from app.pipelines.learning_paths import control as build_control
from app.pipelines.lesson_plans import run as lesson_plan_run

# What a build change may be refused with (the admin's dead-letter retry flashes their own words).
BUILD_REFUSALS = (build_control.InvalidTransition, build_control.BuildConflict, build_control.QuotaExceeded)
# What a page's start, control or regenerate may be refused with.
PAGE_REFUSALS = (*BUILD_REFUSALS, lesson_plan_run.GenerationInProgress, RedisError)

QUEUE_DOWN_FOR_BUILD = "The job queue is unavailable; the build will start when it is back."
QUEUE_DOWN_FOR_RUN = "The job queue is unavailable; your request is saved and will run when it is back."


def page_refusal(
    exc: Exception, regenerate: bool = False, queue_down: str = QUEUE_DOWN_FOR_BUILD
) -> tuple[str, int]:
    """The words and status a page shows for a refusal; `regenerate` adds when to try again."""
    if isinstance(exc, build_control.BuildConflict):
        then = "; regenerate once it has ended" if regenerate else ""
        return f"A build of this path is already running{then}.", 409
    if isinstance(exc, lesson_plan_run.GenerationInProgress):
        return f"{exc} Regenerate once it has ended." if regenerate else str(exc), 409
    if isinstance(exc, build_control.InvalidTransition):
        return str(exc), 400
    if isinstance(exc, build_control.QuotaExceeded):
        return str(exc), 429
    if isinstance(exc, RedisError):
        return queue_down, 503
    raise exc
