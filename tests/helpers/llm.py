"""Settings that point the OpenAI generator at the local fake provider (tests/fake_llm.py)."""

from __future__ import annotations

from tests.fake_llm import FakeChatServer


def llm_settings(fake: FakeChatServer, **extra: str) -> dict[str, str]:
    return {
        "GENERATOR": "openai",
        "OPENAI_BASE_URL": fake.base_url,
        "OPENAI_API_KEY": "sk-test",
        "OPENAI_MODEL": "gpt-test",
        "OPENAI_TIMEOUT_S": "1",
        "OPENAI_COOLDOWN_S": "0.2",
        **extra,
    }
