"""Every status the code knows, in one place: what a row stores (WorkStatus, BuildStatus,
RunStatus) and what a workflow is said to be (WorkflowStatus, derived, never stored).
Models, views and templates (as Jinja globals) compare against these, never raw strings.

Stored values stay as they were: a lesson-plan run stores "running"/"complete" because the
API and the admin pages already say it that way; RUN_AS_BUILD is the one place that says a
run in a build's words."""

from __future__ import annotations

import enum


class WorkStatus(enum.StrEnum):
    """A unit of background work: a build's step or a workflow's module."""

    PENDING = "pending"  # owed, not in Redis (not asked for yet, or parked by a pause)
    QUEUED = "queued"  # a job is in Redis for it
    RUNNING = "running"  # a worker holds its lease
    RETRYING = "retrying"  # an attempt failed; the next one is scheduled
    COMPLETED = "completed"
    FAILED = "failed"  # every attempt failed
    SKIPPED = "skipped"  # done by an earlier build, not run again
    CANCELLED = "cancelled"


IN_FLIGHT = (WorkStatus.QUEUED, WorkStatus.RUNNING, WorkStatus.RETRYING)
FINAL = (WorkStatus.COMPLETED, WorkStatus.FAILED, WorkStatus.SKIPPED, WorkStatus.CANCELLED)
DONE = (WorkStatus.COMPLETED, WorkStatus.SKIPPED)


class BuildStatus(enum.StrEnum):
    """A build of a learning path."""

    PENDING = "pending"  # waiting for its turn (MAX_ACTIVE_BUILDS_PER_USER)
    PROCESSING = "processing"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


ACTIVE_BUILD = (BuildStatus.PENDING, BuildStatus.PROCESSING, BuildStatus.PAUSED)
FINAL_BUILD = (BuildStatus.COMPLETED, BuildStatus.FAILED, BuildStatus.CANCELLED)


class RunStatus(enum.StrEnum):
    """A lesson-plan run: one pass over a workflow's modules."""

    RUNNING = "running"
    COMPLETE = "complete"
    FAILED = "failed"


# A run said in a build's words, so that the admin queue lists both kinds of work one way.
RUN_AS_BUILD = {
    RunStatus.RUNNING: BuildStatus.PROCESSING,
    RunStatus.COMPLETE: BuildStatus.COMPLETED,
    RunStatus.FAILED: BuildStatus.FAILED,
}


class WorkflowStatus(enum.StrEnum):
    """A workflow's lesson plans as a whole, derived from its modules and latest run."""

    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    COMPLETE = "complete"
    FAILED = "failed"


STATUS_ENUMS: dict[str, type[enum.StrEnum]] = {
    cls.__name__: cls for cls in (WorkStatus, BuildStatus, RunStatus, WorkflowStatus)
}
