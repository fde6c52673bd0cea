"""Request bodies, validated with pydantic; camelCase on the wire."""

from __future__ import annotations

import math
from typing import Annotated, Any, TypeVar

from flask import request
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError
from werkzeug.exceptions import BadRequest

from app.errors import ApiError
from app.inputs import bounded_int
from app.models.workflows import MAX_CONTACT_HOURS, MIN_CONTACT_HOURS

M = TypeVar("M", bound=BaseModel)

Text200 = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, strict=True)


def _finite_contact_hours(hours: float) -> float:
    """Python's JSON parser reads NaN, Infinity and 1e400 as floats: refuse them as what they are."""
    if not math.isfinite(hours):
        raise PydanticCustomError("finite_number", "must be a finite number")
    if not MIN_CONTACT_HOURS <= hours <= MAX_CONTACT_HOURS:
        raise PydanticCustomError(
            "contact_hours_range",
            f"must be between {MIN_CONTACT_HOURS:g} and {MAX_CONTACT_HOURS:g} hours (at least 15 minutes)",
        )
    return hours


ContactHours = Annotated[float, AfterValidator(_finite_contact_hours)]


class ModuleIn(Body):
    title: Text200
    contact_hours: ContactHours = Field(default=3.0, alias="contactHours")


class WorkflowIn(Body):
    title: Text200
    topic: Text200
    audience: Text200 | None = None
    modules: list[ModuleIn] = Field(min_length=1, max_length=50)


def parse_body(model: type[M]) -> M:
    """The request's JSON body as `model`, or a 400/422 ApiError that names what is wrong."""
    try:
        data = request.get_json(force=True)
    except BadRequest:
        raise ApiError(400, "invalid_json", "The request body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_json", "The request body must be a JSON object.")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ApiError(422, "validation_error", _summary(exc), _details(exc)) from None


def _details(exc: ValidationError) -> list[dict[str, Any]]:
    return [
        {"field": ".".join(str(part) for part in err["loc"]), "message": err["msg"]}
        for err in exc.errors(include_url=False, include_input=False)
    ]


def _summary(exc: ValidationError) -> str:
    first = _details(exc)[0]
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{first['field'] or 'body'}: {first['message']}{more}"


class LearningPathIn(Body):
    name: Text200
    topic: Text200
    description: Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)] | None = None
    concept_count: int | None = Field(default=None, alias="conceptCount", ge=1, le=1000)


def query_int(name: str, default: int, low: int, high: int) -> int:
    """An integer query parameter within [low, high], or a 422 that says so."""
    raw = request.args.get(name)
    if raw is None:
        return default
    value = bounded_int(raw)
    if value is None:
        raise ApiError(422, "validation_error", f"{name}: must be a whole number")
    if not low <= value <= high:
        raise ApiError(422, "validation_error", f"{name}: must be between {low} and {high}")
    return value


MAX_PAGE_LIMIT = 100
MAX_PAGE = 100_000


def query_page() -> tuple[int, int]:
    """`page` (1–100000, default 1) and `limit` (1–100, default 20) of a list route."""
    return query_int("page", 1, 1, MAX_PAGE), query_int("limit", 20, 1, MAX_PAGE_LIMIT)


def query_choice(name: str, choices: list[str]) -> str | None:
    """An optional query parameter that must be one of `choices`."""
    raw = request.args.get(name)
    if raw in (None, ""):
        return None
    if raw not in choices:
        raise ApiError(422, "validation_error", f"{name}: must be one of {', '.join(choices)}")
    return raw


class StartIn(Body):
    fresh: bool = False


def parse_optional_body(model: type[M]) -> M:
    """Like parse_body, for routes whose body may be left out entirely."""
    if not request.get_data():
        return model()
    return parse_body(model)


class PieceIn(Body):
    """One piece of a path's tree: exactly one of a concept or a sub-concept, by id."""

    concept_id: int | None = Field(default=None, alias="conceptId", ge=1)
    sub_concept_id: int | None = Field(default=None, alias="subConceptId", ge=1)

    @model_validator(mode="after")
    def _exactly_one(self) -> PieceIn:
        if (self.concept_id is None) == (self.sub_concept_id is None):
            raise ValueError("give exactly one of conceptId or subConceptId")
        return self


class BuildStartIn(StartIn):
    scope: PieceIn | None = None  # regenerate this piece alone (always afresh)


class Step10StartIn(StartIn):
    module_index: int | None = Field(default=None, alias="moduleIndex", ge=0)  # regenerate this module alone
