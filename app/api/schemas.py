"""Request bodies, validated with pydantic; camelCase on the wire."""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from flask import request
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from werkzeug.exceptions import BadRequest

from app.errors import ApiError

M = TypeVar("M", bound=BaseModel)

Text200 = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, strict=True)


class ModuleIn(Body):
    title: Text200
    contact_hours: float = Field(default=3.0, alias="contactHours", gt=0, le=200)


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
