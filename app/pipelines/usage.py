"""Tokens and models used, summed per step, per build and per workflow from the call records,
with an estimated cost when prices per 1k tokens are configured."""

from __future__ import annotations

from typing import Any

from flask import current_app
from sqlalchemy import ColumnElement, case, func, select

from app.extensions import db
from app.models import Build, GeneratorCall


def usage_of(condition: ColumnElement[bool]) -> dict[str, Any]:
    """Calls, memo hits, tokens, models and estimated cost of the matching calls (one query)."""
    calls, hits, prompt, completion, models = db.session.execute(
        select(
            func.count(GeneratorCall.id),
            func.coalesce(func.sum(case((GeneratorCall.memo_hit, 1), else_=0)), 0),
            func.coalesce(func.sum(GeneratorCall.prompt_tokens), 0),
            func.coalesce(func.sum(GeneratorCall.completion_tokens), 0),
            func.group_concat(GeneratorCall.model.distinct())
            if db.engine.dialect.name == "sqlite"
            else func.string_agg(GeneratorCall.model.distinct(), ","),
        ).where(condition)
    ).one()
    return {
        "calls": int(calls),
        "memoHits": int(hits),
        "promptTokens": int(prompt),
        "completionTokens": int(completion),
        "models": sorted(set(models.split(","))) if models else [],
        "estimatedCost": estimated_cost(int(prompt), int(completion)),
    }


def build_usage(build: Build) -> dict[str, Any]:
    """The same figures for a build, from its counters (one row, whatever the build's size)."""
    return {
        "calls": build.usage_calls,
        "memoHits": build.usage_memo_hits,
        "promptTokens": build.usage_prompt_tokens,
        "completionTokens": build.usage_completion_tokens,
        "models": sorted(filter(None, build.usage_models.split(","))),
        "estimatedCost": estimated_cost(build.usage_prompt_tokens, build.usage_completion_tokens),
    }


def estimated_cost(prompt_tokens: int, completion_tokens: int) -> float | None:
    config = current_app.config
    prompt_price, completion_price = (
        config["OPENAI_PRICE_PROMPT_PER_1K"],
        config["OPENAI_PRICE_COMPLETION_PER_1K"],
    )
    if not prompt_price and not completion_price:
        return None
    cost: float = round(prompt_tokens / 1000 * prompt_price + completion_tokens / 1000 * completion_price, 6)
    return cost


def usage_by_step(build_id: str, step_ids: list[int] | None = None) -> dict[int | None, dict[str, Any]]:
    """Tokens and model per step of the build (only `step_ids`, when given: one page of steps)."""
    query = (
        select(
            GeneratorCall.step_id,
            func.sum(GeneratorCall.prompt_tokens),
            func.sum(GeneratorCall.completion_tokens),
            func.max(GeneratorCall.model),
        )
        .where(GeneratorCall.build_id == build_id)
        .group_by(GeneratorCall.step_id)
    )
    if step_ids is not None:
        query = query.where(GeneratorCall.step_id.in_(step_ids))
    rows = db.session.execute(query).all()
    return {
        step_id: {"promptTokens": int(p or 0), "completionTokens": int(c or 0), "model": model}
        for step_id, p, c, model in rows
    }
