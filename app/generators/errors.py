"""Failures a generator reports, with the category the job records."""

from __future__ import annotations

from app.failure_kinds import CategorizedFailure


class GenerationError(CategorizedFailure):
    """A generation failed; `transient` says whether another attempt may succeed."""


class TransientGenerationError(GenerationError):
    category = "provider_error"


class PermanentGenerationError(GenerationError):
    category = "provider_error"
    transient = False


class InvalidOutputError(GenerationError):
    """The model answered twice with something that is not valid against the schema."""

    category = "invalid_output"


class RateLimitedError(GenerationError):
    """The provider kept answering 429."""

    category = "rate_limited"


class ProviderTimeoutError(TransientGenerationError):
    category = "timeout"
