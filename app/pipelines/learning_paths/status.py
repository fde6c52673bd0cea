"""What a person watching a build sees: exact counts, a progress that only goes up, the
categories of what failed, whether it waits for the rate limit, and an estimate of the time
left — in a constant number of queries however many steps the build has."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from flask import current_app
from sqlalchemy import Select, bindparam, case, func, select

from app.database import isoformat, utcnow
from app.extensions import db
from app.jobs.limiter import rate_limit_per_s
from app.models import Build, BuildStatus, BuildStep, LearningPath, StepType, WorkStatus
from app.models.statuses import DONE, FINAL_BUILD
from app.pipelines.usage import build_usage

STAGE_WEIGHTS = {"concepts": 20, "sub-concepts": 30, "knowledge-units": 50}


@cache
def _unit_fractions_query() -> Select[str, float]:
    """Built once: every poll runs it, and building the expression cost more than running it."""
    done = BuildStep.status.in_(DONE)
    share = case(
        (done & (BuildStep.children_total > 0), BuildStep.children_done * 1.0 / BuildStep.children_total),
        (done, 1.0),
        else_=0.0,
    )
    return (
        select(BuildStep.build_id, func.sum(share))
        .where(
            BuildStep.build_id.in_(bindparam("build_ids", expanding=True)),
            BuildStep.type == StepType.SUB_CONCEPTS,
        )
        .group_by(BuildStep.build_id)
    )


def unit_fractions(build_ids: list[str]) -> dict[str, float]:
    """Per build, Σ over its concepts of the share of their sub-concepts whose units are done
    (0 until the concept is decomposed, 1 for a decomposed concept with no sub-concepts)."""
    rows = db.session.execute(_unit_fractions_query(), {"build_ids": build_ids}).all()
    return {build_id: float(total or 0) for build_id, total in rows}


def progress_percent(build: Build, unit_fraction_sum: float | None = None) -> int:
    """20% concepts + 30% sub-concepts + 50% knowledge units, each concept weighing the same
    in the two later stages. Every term only grows as steps complete, so the whole never goes
    down; it reaches 100 only when the build is completed."""
    if build.status == BuildStatus.COMPLETED:
        return 100
    if not build.total_concepts:
        return 0
    if unit_fraction_sum is None:
        unit_fraction_sum = unit_fractions([build.id]).get(build.id, 0.0)
    percent = (
        STAGE_WEIGHTS["concepts"]
        + STAGE_WEIGHTS["sub-concepts"] * build.completed_concepts / build.total_concepts
        + STAGE_WEIGHTS["knowledge-units"] * unit_fraction_sum / build.total_concepts
    )
    return min(99, math.floor(percent))


def error_categories(build_id: str) -> dict[str, int]:
    return error_categories_of([build_id]).get(build_id, {})


def error_categories_of(build_ids: list[str]) -> dict[str, dict[str, int]]:
    """Per build, how many of its steps failed or were cancelled, by category (one query)."""
    rows = db.session.execute(
        select(BuildStep.build_id, BuildStep.error_category, func.count(BuildStep.id))
        .where(
            BuildStep.build_id.in_(build_ids),
            BuildStep.status.in_([WorkStatus.FAILED, WorkStatus.CANCELLED]),
        )
        .group_by(BuildStep.build_id, BuildStep.error_category)
    ).all()
    categories: dict[str, dict[str, int]] = {}
    for build_id, category, count in rows:
        categories.setdefault(build_id, {})[category or "error"] = count
    return categories


@dataclass(frozen=True)
class RateLimitWait:
    """How many of a build's running steps wait for a slot, and when the first slot comes."""

    steps: int
    next_slot_at: datetime | None

    @property
    def seconds_to_next_slot(self) -> int | None:
        if self.next_slot_at is None:
            return None
        return max(1, math.ceil((self.next_slot_at - utcnow()).total_seconds()))


NO_WAIT = RateLimitWait(0, None)


def rate_limit_wait(build: Build) -> RateLimitWait:
    return rate_limit_waits([build]).get(build.id, NO_WAIT)


def rate_limit_waits(builds: list[Build]) -> dict[str, RateLimitWait]:
    """Per build, its running steps that wait for a slot: one query over the running steps of
    the builds still going (at most as many as there are workers); none when all are final."""
    live = [build.id for build in builds if build.status not in FINAL_BUILD]
    if not live:
        return {}
    rows = db.session.execute(_rate_limit_waits_query(), {"build_ids": live}).all()
    return {build_id: RateLimitWait(int(steps), next_slot_at) for build_id, steps, next_slot_at in rows}


@cache
def _rate_limit_waits_query() -> Select[str, int, datetime | None]:
    """Built once, as every poll of a live build runs it."""
    return (
        select(BuildStep.build_id, func.count(BuildStep.id), func.min(BuildStep.rate_limit_next_slot_at))
        .where(
            BuildStep.build_id.in_(bindparam("build_ids", expanding=True)),
            BuildStep.status == WorkStatus.RUNNING,
            BuildStep.rate_limit_next_slot_at.is_not(None),
        )
        .group_by(BuildStep.build_id)
    )


def _calls_owed(build: Build, concept_count: int | None) -> int:
    """Generator calls the build still owes, one per step, counted low where the tree is not
    known yet (a concept not yet broken down owes at least one unit step). `concept_count` is
    the path's, passed in so that a list of pending builds does not load each path."""
    if not build.total_concepts:
        return 1 + 2 * (concept_count or 0)
    concepts_left = build.total_concepts - build.completed_concepts
    per_concept = build.total_sub_concepts / build.completed_concepts if build.completed_concepts else 1
    units_left = build.total_sub_concepts - build.completed_sub_concepts
    return concepts_left + units_left + max(concepts_left, round(concepts_left * per_concept))


def _measured_seconds_left(build: Build) -> float | None:
    """Steps not yet done × their stage's measured mean duration ÷ the stage's workers, from the
    build's counters alone (no scan of its steps). Knowledge-unit steps of concepts not yet
    decomposed are guessed from the decomposed ones; None until both stages have a measurement."""
    if not build.completed_concepts or not build.completed_sub_concepts:
        return None
    config = current_app.config
    per_concept = build.total_sub_concepts / build.completed_concepts
    concepts_left = build.total_concepts - build.completed_concepts
    units_left = build.total_sub_concepts - build.completed_sub_concepts + round(concepts_left * per_concept)
    seconds: float = (
        concepts_left * build.sub_concepts_ms / build.completed_concepts / config["JOB_CONCURRENCY_DECOMPOSE"]
        + units_left
        * build.knowledge_units_ms
        / build.completed_sub_concepts
        / config["JOB_CONCURRENCY_GENERATE_KU"]
    ) / 1000
    return seconds


def estimated_seconds_left(
    build: Build, wait: RateLimitWait = NO_WAIT, concept_count: int | None = None
) -> int | None:
    """The measured estimate, but never less than the calls still owed ÷ the rate limit's calls
    per second: steps that ran before the window filled are fast, the rest are not.

    While steps wait for a slot the limit alone sets the pace, so the estimate counts down with
    the next slot instead of freezing: the seconds to it (as the page says them, at least 1) plus
    the owed calls after it ÷ the rate, never below owed ÷ rate - one window (a full window's
    calls may be free at once).
    `concept_count` defaults to the path's (a lazy load: lists pass it in)."""
    if build.status not in (BuildStatus.PROCESSING, BuildStatus.PAUSED, BuildStatus.PENDING):
        return None
    rate = rate_limit_per_s(current_app.config)
    owed = _calls_owed(build, build.path.concept_count if concept_count is None else concept_count)
    if rate and wait.seconds_to_next_slot is not None:
        window_s: float = current_app.config["JOB_RATE_LIMIT_MAX"] / rate
        return math.ceil(max(wait.seconds_to_next_slot + (owed - 1) / rate, owed / rate - window_s))
    measured = _measured_seconds_left(build)
    floor = owed / rate if rate else None
    if measured is None and floor is None:
        return None
    return math.ceil(max(measured or 0.0, floor or 0.0))


def build_summary(build: Build) -> dict[str, Any]:
    """The build as the API shows it."""
    return build_summaries([build])[0]


def build_summaries(builds: list[Build]) -> list[dict[str, Any]]:
    """Each build as the API shows it, in four queries however many builds there are."""
    if not builds:
        return []
    ids = [build.id for build in builds]
    fractions = unit_fractions(ids)
    categories = error_categories_of(ids)
    waits = rate_limit_waits(builds)
    paths = {
        path_id: (name, concept_count)
        for path_id, name, concept_count in db.session.execute(
            select(LearningPath.id, LearningPath.name, LearningPath.concept_count).where(
                LearningPath.id.in_({build.path_id for build in builds})
            )
        )
    }
    return [
        build.to_dict(progress_percent(build, fractions.get(build.id, 0.0)))
        | {
            "path": {"id": build.path_id, "name": paths[build.path_id][0]},
            "errorCategories": categories.get(build.id, {}),
            "estimatedSecondsLeft": estimated_seconds_left(
                build, waits.get(build.id, NO_WAIT), paths[build.path_id][1] or 0
            ),
            "usage": build_usage(build),
        }
        | rate_limit_fields(waits.get(build.id, NO_WAIT))
        for build in builds
    ]


def rate_limit_fields(wait: RateLimitWait) -> dict[str, Any]:
    return {
        "waitingForRateLimit": wait.steps > 0,
        "stepsWaitingForRateLimit": wait.steps,
        "rateLimitNextSlotAt": isoformat(wait.next_slot_at),
    }
