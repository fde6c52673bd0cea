"""Building the generator the settings name."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.generators import Generator
from app.generators.offline import OfflineGenerator
from app.generators.services import ProviderServices


def build_generator(
    config: Mapping[str, Any],
    fresh: bool = False,
    services: ProviderServices | None = None,
    regeneration: int = 0,
) -> Generator:
    """The generator the settings name; the offline one needs no key, no network and no services.

    `fresh` asks the model again instead of reusing stored answers; `services` (the limits, the
    memo, shared notes) is what a provider-backed generator is given by the pipelines;
    `regeneration` (the n-th time this content is asked for again) makes the offline generator
    word its drafts differently, as a model's new answer would differ anyway.
    """
    name = config["GENERATOR"]
    if name == "openai":
        if services is None:
            raise ValueError("GENERATOR=openai needs the pipelines' provider services")
        # Lazy on purpose, not to hide a cycle: only a process configured for a provider pays
        # for loading the openai client (tens of MB per worker process otherwise).
        from app.generators.openai import OpenAIGenerator

        return OpenAIGenerator(config, services, fresh=fresh)
    if name == "offline":
        return OfflineGenerator(
            latency_ms=config["GENERATOR_LATENCY_MS"],
            failure_rate=config["GENERATOR_FAILURE_RATE"],
            fail_on=config["GENERATOR_FAIL_ON"],
            regeneration=regeneration,
        )
    raise ValueError(f"GENERATOR={name!r} is not a known generator (known: offline, openai)")
