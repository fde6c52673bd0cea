"""GENERATOR=openai: OpenAI, or any server that speaks Chat Completions (Ollama, vLLM,
llama.cpp's server, LM Studio, OpenRouter), through the official `openai` client.

Each generation renders a prompt template (app/generators/prompts/), asks for JSON matching a
schema, validates it with the pydantic models the offline generator also returns, and asks
once more with the validation error when it is not valid. It asks for structured output where
the server takes it and steps down to JSON mode, then to the schema in the prompt alone, when
a server refuses the `response_format` it was sent (OPENAI_RESPONSE_FORMAT=auto, remembered
per server and model in a note shared by every worker). Answers are memoised by (provider, model, template
version, input), so a retried step whose call already succeeded does not pay again.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import openai
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from pydantic import BaseModel, ValidationError

from app.generators import ProgressCallback
from app.generators.errors import (
    InvalidOutputError,
    PermanentGenerationError,
    ProviderTimeoutError,
    RateLimitedError,
    TransientGenerationError,
)
from app.generators.schemas import (
    ConceptBrief,
    ConceptDraft,
    ConceptsAnswer,
    KnowledgeUnitDraft,
    KnowledgeUnitsAnswer,
    LessonPlanDraft,
    LessonPlansAnswer,
    ModuleBrief,
    PathBrief,
    SubConceptBrief,
    SubConceptDraft,
    SubConceptsAnswer,
)
from app.generators.services import ProviderServices

log = logging.getLogger(__name__)

A = TypeVar("A", bound=BaseModel)
PROMPTS = Path(__file__).parent / "prompts"
SYSTEM = "You write course content. You answer with one JSON object and nothing else."
DEFAULT_RETRY_AFTER_S = 5.0
# From strictest to loosest: structured output, JSON mode, no response_format (the schema is
# in the prompt either way, and every answer is validated).
RESPONSE_FORMATS = ("json_schema", "json_object", "none")
RESPONSE_FORMAT_SETTINGS = ("auto", *RESPONSE_FORMATS)
FORMAT_KEY = "curriculum-builder:response-format:{}"
FORMAT_MEMORY_S = 24 * 3600  # a server upgraded to structured output is tried again a day later
FORMAT_REREAD_S = 300  # how long a process trusts its own copy before asking Redis again
_known_formats: dict[tuple[str, str], tuple[str, float]] = {}  # (format, read at, monotonic)


_clients: dict[tuple[str, str, float], openai.OpenAI] = {}
_clients_lock = threading.Lock()


@functools.cache
def _schema(answer: type[BaseModel]) -> dict[str, Any]:
    """An answer model's JSON Schema, built once per process: pydantic builds it anew on each
    call, and at a hundred calls a second that was 5% of a worker process's GIL."""
    return answer.model_json_schema()


@functools.cache
def _schema_text(answer: type[BaseModel]) -> str:
    return json.dumps(_schema(answer))


def shared_client(base_url: str, api_key: str, timeout_s: float) -> openai.OpenAI:
    """The process's one client for this provider, shared by every call and thread (httpx's
    pool is thread-safe): calls reuse kept-alive connections instead of a TCP and TLS
    handshake each, and a process holds one connection pool however many steps it runs."""
    key = (base_url, api_key, timeout_s)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = openai.OpenAI(
                base_url=base_url,
                api_key=api_key,
                timeout=timeout_s,
                max_retries=0,  # retries are the job's, with backoff, and 429s wait on the shared limiter
            )
        return client


def _forget_clients_in_child() -> None:
    """A forked child opens its own connections: sockets shared with the parent would mix replies."""
    global _clients_lock
    _clients_lock = threading.Lock()
    _clients.clear()


os.register_at_fork(after_in_child=_forget_clients_in_child)


@cache
def _templates() -> Environment:
    return Environment(loader=FileSystemLoader(PROMPTS), undefined=StrictUndefined, autoescape=False)


@cache
def template_version(name: str) -> str:
    """A template's version is its content's hash: editing a prompt invalidates its memos."""
    return hashlib.sha256((PROMPTS / f"{name}.md").read_bytes()).hexdigest()[:16]


@dataclass
class Usage:
    model: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    memo_hit: bool = False


class OpenAIGenerator:
    self_limiting = True  # each HTTP request takes its own slot in the shared limits

    def __init__(self, config: Mapping[str, Any], services: ProviderServices, fresh: bool = False) -> None:
        self.config = config
        self.services = services
        self.fresh = fresh
        self.model = config["OPENAI_MODEL"]
        self.base_url = config["OPENAI_BASE_URL"]
        self.client = shared_client(
            self.base_url, config["OPENAI_API_KEY"] or "not-needed", config["OPENAI_TIMEOUT_S"]
        )
        self.usage = Usage(model=self.model)
        setting = config["OPENAI_RESPONSE_FORMAT"]
        if setting not in RESPONSE_FORMAT_SETTINGS:
            raise PermanentGenerationError(
                f"OPENAI_RESPONSE_FORMAT is {setting!r}: use one of {', '.join(RESPONSE_FORMAT_SETTINGS)}"
            )
        self.response_format = setting if setting != "auto" else self._known_format()

    # --- the generator interface ---------------------------------------------------------

    def lesson_plans(self, brief: ModuleBrief, progress: ProgressCallback) -> list[LessonPlanDraft]:
        inputs = brief.model_dump() | {"total_minutes": max(1, round(brief.contact_hours * 60))}
        return self._ask("lesson_plans", inputs, LessonPlansAnswer, progress).lesson_plans

    def concepts(self, brief: PathBrief, progress: ProgressCallback) -> list[ConceptDraft]:
        return self._ask("concepts", brief.model_dump(), ConceptsAnswer, progress).concepts

    def sub_concepts(self, brief: ConceptBrief, progress: ProgressCallback) -> list[SubConceptDraft]:
        return self._ask("sub_concepts", brief.model_dump(), SubConceptsAnswer, progress).sub_concepts

    def knowledge_units(self, brief: SubConceptBrief, progress: ProgressCallback) -> list[KnowledgeUnitDraft]:
        return self._ask(
            "knowledge_units", brief.model_dump(), KnowledgeUnitsAnswer, progress
        ).knowledge_units

    # --- asking, validating, memoising ---------------------------------------------------

    def _ask(self, template: str, inputs: dict[str, Any], answer: type[A], progress: ProgressCallback) -> A:
        prompt = _templates().get_template(f"{template}.md").render(**inputs)
        key = hashlib.sha256(
            json.dumps(
                ["openai", self.base_url, self.model, template, template_version(template), prompt]
            ).encode()
        ).hexdigest()
        if not self.fresh and (memo := self.services.recall_answer(key)) is not None:
            self.usage.memo_hit = True
            return answer.model_validate_json(memo)
        messages: list[dict[str, str]] = [
            {"role": "system", "content": SYSTEM},
            {
                "role": "user",
                "content": f"{prompt}\n\nJSON Schema:\n{_schema_text(answer)}",
            },
        ]
        text = self._complete(messages, answer, template)
        progress(50)
        try:
            parsed = answer.model_validate_json(text)
        except ValidationError as first:
            messages += [
                {"role": "assistant", "content": text},
                {
                    "role": "user",
                    "content": f"That answer is not valid: {_summary(first)}. "
                    "Answer again with one JSON object matching the schema.",
                },
            ]
            text = self._complete(messages, answer, template)
            try:
                parsed = answer.model_validate_json(text)
            except ValidationError as second:
                raise InvalidOutputError(
                    f"the model answered twice with invalid output: {_summary(second)}; "
                    f"its answer began {text[:120]!r}"
                ) from None
        self.services.remember_answer(key, template, self.model, text)
        return parsed

    # --- which response_format the server takes ------------------------------------------

    def _format_arguments(self, answer: type[BaseModel], name: str) -> dict[str, Any]:
        if self.response_format == "json_schema":
            schema = {"name": name, "schema": _schema(answer)}
            return {"response_format": {"type": "json_schema", "json_schema": schema}}
        if self.response_format == "json_object":
            return {"response_format": {"type": "json_object"}}
        return {}

    def _format_key(self) -> str:
        return FORMAT_KEY.format(hashlib.sha256(f"{self.base_url}|{self.model}".encode()).hexdigest()[:16])

    def _known_format(self) -> str:
        """What this server and model were found to take (by any worker), else the strictest."""
        copy = _known_formats.get((self.base_url, self.model))
        if copy is not None and time.monotonic() - copy[1] < FORMAT_REREAD_S:
            return copy[0]
        stored = self.services.read_note(self._format_key())
        known = stored if stored in RESPONSE_FORMATS else RESPONSE_FORMATS[0]
        _known_formats[(self.base_url, self.model)] = (known, time.monotonic())
        return known

    def _step_down(self, exc: openai.BadRequestError) -> bool:
        """After a 400 about response_format, use the next looser format (and tell the other
        workers); False when the setting is fixed or nothing looser is left."""
        position = RESPONSE_FORMATS.index(self.response_format)
        about_format = any(
            word in _message(exc).lower()
            for word in ("response_format", "json_schema", "json_object", "response format")
        )
        if (
            self.config["OPENAI_RESPONSE_FORMAT"] != "auto"
            or not about_format
            or position + 1 == len(RESPONSE_FORMATS)
        ):
            return False
        looser = RESPONSE_FORMATS[position + 1]
        log.warning(
            "%s refused response_format %s for %s (%s); using %s",
            self.base_url,
            self.response_format,
            self.model,
            _message(exc),
            looser,
        )
        self.response_format = looser
        _known_formats[(self.base_url, self.model)] = (looser, time.monotonic())
        self.services.write_note(self._format_key(), looser, FORMAT_MEMORY_S)  # else each finds out alone
        return True

    # --- one HTTP request, its limits and its errors -------------------------------------

    def _complete(self, messages: list[dict[str, str]], answer: type[BaseModel], name: str) -> str:
        reserve = sum(len(m["content"]) for m in messages) // 3 + self.config["OPENAI_MAX_OUTPUT_TOKENS"]
        waits = 0
        while True:
            self.services.wait_for_slot(reserve)
            try:
                response = self.client.chat.completions.create(
                    model=self.model,
                    messages=messages,  # type: ignore[arg-type]
                    max_tokens=self.config["OPENAI_MAX_OUTPUT_TOKENS"],
                    **self._format_arguments(answer, name),
                )
            except openai.RateLimitError as exc:
                self.services.pause_calls(_retry_after(exc))  # every worker waits, not only this step
                waits += 1
                if waits > self.config["OPENAI_MAX_429_WAITS"]:
                    raise RateLimitedError(
                        f"{self.base_url} kept answering 429 (rate limited) after "
                        f"{self.config['OPENAI_MAX_429_WAITS']} waits"
                    ) from None
                continue
            except openai.BadRequestError as exc:
                if self._step_down(exc):
                    continue
                raise self._classify(exc) from exc
            except openai.APIError as exc:
                raise self._classify(exc) from exc
            return self._account(response, reserve)

    def _account(self, response: Any, reserved: int) -> str:
        used = response.usage
        if used is not None:
            self.usage.prompt_tokens += used.prompt_tokens or 0
            self.usage.completion_tokens += used.completion_tokens or 0
            self.services.charge_tokens((used.total_tokens or 0) - reserved)
        self.usage.model = response.model or self.model
        content = response.choices[0].message.content if response.choices else None
        return content or ""

    def _classify(self, exc: openai.APIError) -> Exception:
        """Timeouts, connection errors and 5xx are transient (and pause every worker briefly, so a
        provider that is down does not burn every step's attempts in seconds); 4xx are not."""
        where = self.base_url
        if isinstance(exc, openai.APITimeoutError):
            self.services.pause_calls(self.config["OPENAI_COOLDOWN_S"])
            return ProviderTimeoutError(f"{where} did not answer within {self.config['OPENAI_TIMEOUT_S']} s")
        if isinstance(exc, openai.APIConnectionError):
            self.services.pause_calls(self.config["OPENAI_COOLDOWN_S"])
            return TransientGenerationError(f"could not connect to {where}: {exc}")
        status = getattr(exc, "status_code", None)
        if status == 401:
            return PermanentGenerationError(f"OPENAI_API_KEY was refused by {where} (401): set a valid key")
        if status == 403:
            return PermanentGenerationError(
                f"{where} denied access to model {self.model!r} (403): check the key's permissions"
            )
        if status == 404:
            return PermanentGenerationError(
                f"{where} has no model {self.model!r} (404): check OPENAI_MODEL and OPENAI_BASE_URL"
            )
        if status is not None and 400 <= status < 500:
            return PermanentGenerationError(f"{where} rejected the request ({status}): {_message(exc)}")
        self.services.pause_calls(self.config["OPENAI_COOLDOWN_S"])
        return TransientGenerationError(f"{where} failed ({status or 'error'}): {_message(exc)}")


def _retry_after(exc: openai.APIStatusError) -> float:
    raw = exc.response.headers.get("retry-after") if exc.response is not None else None
    try:
        return max(0.1, float(raw)) if raw else DEFAULT_RETRY_AFTER_S
    except ValueError:
        return DEFAULT_RETRY_AFTER_S


def _message(exc: openai.APIError) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        return str(body.get("message") or body.get("error") or body)[:300]
    return str(exc)[:300]


def _summary(exc: ValidationError) -> str:
    errors = exc.errors(include_url=False, include_input=False)
    parts = [f"{'.'.join(map(str, e['loc'])) or 'answer'}: {e['msg']}" for e in errors[:3]]
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    return "; ".join(parts) + more
