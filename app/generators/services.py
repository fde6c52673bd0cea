"""What a generator that calls a provider is handed by its caller: the shared limits, a memo of
answers and notes shared between processes. The generator turns a brief into drafts; where the
limits, the memo and the notes live is the caller's business (app/pipelines/provider_services.py)."""

from __future__ import annotations

from typing import Protocol


class ProviderServices(Protocol):
    def wait_for_slot(self, tokens: int) -> None:
        """Block until the shared limits allow one more request of about `tokens` tokens."""
        ...

    def pause_calls(self, seconds: float) -> None:
        """Hold every process's calls for `seconds` (a 429, or a provider that is down)."""
        ...

    def charge_tokens(self, tokens: int) -> None:
        """Correct the tokens reserved for a request by what it really used (may be negative)."""
        ...

    def recall_answer(self, key: str) -> str | None:
        """A valid answer stored under `key` before, if any."""
        ...

    def remember_answer(self, key: str, kind: str, model: str, answer: str) -> None:
        """Keep a valid answer at once, so a retried step whose call succeeded does not pay again."""
        ...

    def read_note(self, key: str) -> str | None:
        """A note another process left under `key` (None if none, or it cannot be read)."""
        ...

    def write_note(self, key: str, value: str, ttl_s: int) -> None:
        """Leave a note for every process, best effort."""
        ...
