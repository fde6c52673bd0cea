"""How the API answers a build change the pipeline refuses: one mapping for every route."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from app.errors import ApiError
from app.pipelines.learning_paths import control as build_control
from app.seed_names import build_json


@contextmanager
def api_errors_of_build_control() -> Iterator[None]:
    """Turn build_control's refusals into the API errors the README documents."""
    try:
        yield
    except build_control.InvalidTransition as exc:
        raise ApiError(400, "invalid_state", str(exc)) from None
    except build_control.UnknownPiece as exc:
        raise ApiError(404, "not_found", str(exc)) from None
    except build_control.BuildConflict as exc:
        raise ApiError(
            409, "build_in_progress", str(exc), build_json({"buildId": exc.active_build_id})
        ) from None
    except build_control.QuotaExceeded as exc:
        raise ApiError(429, "too_many_builds", str(exc)) from None
