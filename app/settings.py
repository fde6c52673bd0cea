"""Every environment variable the app reads, in one class: its type, default and meaning.

`Settings` is the registry: README's configuration table and `.env.example` are generated from it
(`python -m app.settings_docs`), and a value it refuses stops web, worker and CLI at start with
the variable's name and what it accepts. To add a setting, add one line to `Settings`; it reaches
`app.config` under the same name.
"""

from __future__ import annotations

import os
import types
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin
from urllib.parse import quote, urlsplit

import annotated_types
from limits import parse_many
from pydantic import (
    AfterValidator,
    AllowInfNan,
    BeforeValidator,
    Field,
    JsonValue,
    ValidationError,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

DEVELOPMENT = "development"
# JOB_RATE_LIMIT_MAX when unset, by GENERATOR: only a generator that calls a provider is limited.
DEFAULT_RATE_LIMIT_MAX = {"openai": 10}


class InvalidSettings(ValueError):
    """One or more variables hold a value their setting does not accept: the process must not start."""


Marker = TypeVar("Marker")


@dataclass(frozen=True)
class Accepts:
    """What a type accepts, in words, where its annotation cannot say it (errors and docs show it)."""

    text: str


@dataclass(frozen=True)
class Hidden:
    """The value may hold a password or a key: errors name the variable but never show the value."""


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("not an http(s) URL")
    return value


def _http_url_or_blank(value: str) -> str:
    return value if value == "" else _http_url(value)


def _redis_url(value: str) -> str:
    parts = urlsplit(value)
    if not (parts.scheme in ("redis", "rediss") and parts.hostname) and not (
        parts.scheme == "unix" and parts.path
    ):
        raise ValueError("not a Redis URL")
    return value


def _database_url(value: str) -> str:
    """Refuse what SQLAlchemy cannot read; postgres:// (Heroku's spelling) gets our driver, psycopg 3."""
    try:
        make_url(value)
    except ArgumentError as exc:
        raise ValueError("not a database URL") from exc
    for prefix in ("postgres://", "postgresql://"):
        if value.startswith(prefix):
            return "postgresql+psycopg://" + value[len(prefix) :]
    return value


def _rate_limit(value: str) -> str:
    parse_many(value)  # a ValueError names what it could not read
    return value


def _lowercase(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


def _uppercase(value: Any) -> Any:
    return value.strip().upper() if isinstance(value, str) else value


HttpUrl = Annotated[str, AfterValidator(_http_url), Accepts("an http:// or https:// URL")]
HttpUrlOrBlank = Annotated[
    str, AfterValidator(_http_url_or_blank), Accepts("an http:// or https:// URL, or nothing"), Hidden()
]
RedisUrl = Annotated[
    str, AfterValidator(_redis_url), Accepts("a redis://, rediss:// or unix:// URL"), Hidden()
]
DatabaseUrl = Annotated[
    str,
    AfterValidator(_database_url),
    Accepts("a database URL: sqlite:///path/to/file.db or postgresql://user:password@host/name"),
    Hidden(),
]
RateLimit = Annotated[
    str,
    AfterValidator(_rate_limit),
    Accepts(
        "a rate limit in Flask-Limiter's notation, e.g. '10 per 15 minutes' or '5 per minute; 20 per hour'"
    ),
]
SecretText = Annotated[str, Hidden()]


def _sentinels(value: str) -> str:
    """Comma-separated host:port addresses, or nothing."""
    for address in filter(None, (part.strip() for part in value.split(","))):
        host, _, port = address.rpartition(":")
        if not host or not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):
            raise ValueError(f"{address!r} is not host:port")
    return value


SentinelAddresses = Annotated[
    str, AfterValidator(_sentinels), Accepts("host:port addresses separated by commas, or nothing")
]
Number = Annotated[float, AllowInfNan(False)]  # a float that is not nan or inf
AppEnv = Annotated[Literal["production", "development"], BeforeValidator(_lowercase)]
LogLevel = Annotated[Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], BeforeValidator(_uppercase)]


def setting(
    default: Any, meaning: str, *, shown_default: str | None = None, in_app_config: bool = True, **bounds: Any
) -> Any:
    """A variable's entry: its default, what it means (the docs' words) and any bounds (ge=, le=, ...).

    `shown_default` replaces the default in the docs where it is computed; `in_app_config=False`
    keeps a variable read by something other than the app (make run's PORT) out of `app.config`.
    """
    extra: dict[str, JsonValue] = {"shown_default": shown_default, "in_app_config": in_app_config}
    return Field(default, description=meaning, json_schema_extra=extra, **bounds)


class Settings(BaseSettings):
    """The registry: one entry per variable, in the order the docs list them."""

    model_config = SettingsConfigDict(case_sensitive=True, env_ignore_empty=True, extra="ignore")

    APP_ENV: AppEnv = setting(
        "production",
        "development (what `make run` sets) lets the app run without SECRET_KEY, keeping a generated "
        "one in instance/secret-key; production refuses to start without one",
    )
    SECRET_KEY: SecretText = setting(
        "",
        "signs sessions; the same long random value for every web and worker process, e.g. "
        "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`",
        shown_default="none: required unless APP_ENV=development",
    )
    DATABASE_URL: DatabaseUrl | None = setting(
        None,
        "the database; SQLite runs in WAL mode with a 30 s busy timeout so several processes can "
        "write; `postgres://` and `postgresql://` URLs use psycopg 3",
        shown_default="sqlite:///instance/curriculum.db",
    )
    REDIS_URL: RedisUrl | None = setting(
        None,
        "the Redis that holds the queues, the leases and the limiter (`make run`, when it is unset, "
        "starts a local one); with REDIS_SENTINELS only its password, database and TLS are used",
        shown_default="redis://localhost:6379/0, or built from REDIS_HOST, REDIS_PORT and REDIS_PASSWORD",
    )
    REDIS_HOST: str = setting("localhost", "the seed's name, used when REDIS_URL is unset")
    REDIS_PORT: int = setting(6379, "the seed's name, used when REDIS_URL is unset", ge=1, le=65535)
    REDIS_PASSWORD: SecretText = setting("", "the seed's name, used when REDIS_URL is unset")
    REDIS_SENTINELS: SentinelAddresses = setting(
        "", "set: the master is found through these Sentinels (host:port,host:port; see Production)"
    )
    REDIS_SENTINEL_MASTER: str = setting("", "the name the Sentinels monitor (required with REDIS_SENTINELS)")
    REDIS_SENTINEL_PASSWORD: SecretText = setting("", "the Sentinels' own password, if they need one")
    PORT: int = setting(
        8000,
        "`make run`'s web port on 127.0.0.1; if it is taken, `make run` says so and exits 1",
        in_app_config=False,
        ge=1,
        le=65535,
    )
    MAX_CONTENT_LENGTH: int = setting(256 * 1024, "the largest request body, in bytes (413 beyond)", ge=1)
    SESSION_COOKIE_SECURE: bool = setting(False, "sign-in cookies sent over HTTPS only: set it behind HTTPS")
    SESSION_MAX_AGE_S: int = setting(14 * 86400, "a sign-in lasts at most this long (14 days)", ge=1)
    SIGNIN_FAILURE_LIMIT_PER_ACCOUNT: RateLimit = setting(
        "10 per 15 minutes", "failed sign-ins per account, then 429 until the window has room"
    )
    SIGNIN_FAILURE_LIMIT_PER_ADDRESS: RateLimit = setting(
        "50 per 15 minutes", "failed sign-ins per client address, across accounts"
    )
    API_TOKEN_FAILURE_LIMIT: RateLimit = setting(
        "30 per 15 minutes", "failed bearer token checks per client address"
    )
    TRUSTED_PROXY_HOPS: int = setting(
        0,
        "how many proxies in front of gunicorn append to X-Forwarded-For; 0: the socket's address is "
        "the client's and the header is ignored; never more than there really are, or a client can "
        "choose its own address",
        ge=0,
    )
    POLL_INTERVAL_S: Number = setting(3.0, "how often a page's live region refreshes", gt=0)
    JOB_MAX_ATTEMPTS: int = setting(3, "attempts in all, the first included", ge=1)
    JOB_BACKOFF_TYPE: Literal["exponential", "fixed"] = setting(
        "exponential", "exponential doubles the delay before each retry; fixed keeps it"
    )
    JOB_BACKOFF_DELAY: int = setting(1000, "milliseconds before the first retry", ge=0)
    JOB_TIMEOUT_S: int = setting(1800, "an attempt running longer is stopped and retried", ge=1)
    JOB_KEEP_COMPLETED_S: int = setting(
        24 * 3600, "RQ keeps finished jobs this long (the database keeps all)", ge=0
    )
    JOB_KEEP_FAILED_S: int = setting(7 * 24 * 3600, "RQ keeps failed jobs this long", ge=0)
    JOB_LEASE_TTL_S: Number = setting(
        30.0, "a running step's lease, renewed while it runs; lapsed means its worker is gone", gt=0
    )
    JOB_RECOVERY_INTERVAL_S: Number = setting(
        10.0, "how often the recovery sweep looks for lost or owed work", gt=0
    )
    JOB_MAX_WORKER_LOSSES: int = setting(
        2, "a step whose worker is lost this many times is failed (worker_lost)", ge=1
    )
    JOB_RATE_LIMIT_MAX: int | None = setting(
        None,
        "generator calls per JOB_RATE_LIMIT_DURATION across every worker (0: no limit); unset, 10 "
        "with GENERATOR=openai and no limit with offline, which calls no provider",
        shown_default="10 with openai, 0 with offline",
        ge=0,
    )
    JOB_RATE_LIMIT_DURATION: int = setting(60_000, "the rate limit's window, in milliseconds", ge=1)
    JOB_RATE_LIMIT_MARGIN_MS: int = setting(
        100,
        "calls are admitted in a window this much longer than JOB_RATE_LIMIT_DURATION, so the time a "
        "request takes to reach the provider cannot put one call too many in its window",
        ge=0,
    )
    JOB_RATE_LIMIT_TOKENS: int = setting(0, "tokens per window across every worker (0: no cap)", ge=0)
    JOB_CONCURRENCY_DECOMPOSE: int = setting(
        3, "decompose-concept jobs at once per worker machine (each a thread)", ge=0
    )
    JOB_CONCURRENCY_GENERATE_KU: int = setting(
        5, "generate-ku jobs at once per worker machine (threads)", ge=0
    )
    WORKER_PROCESSES: int = setting(
        0,
        "worker processes sharing those threads (~80 MB PSS each); 0: one per 50 threads, <= 1 per core",
        ge=0,
    )
    RELEASE_WINDOW: int | None = setting(
        None,
        "steps of one queue held in Redis at once (queued + running), all builds together (a user "
        "with none in flight may take one more); the rest "
        "wait in the database and are released fairly as steps finish. Smaller: a new build waits "
        "behind fewer steps; too small: workers idle between steps. 0: no window, every step is "
        "enqueued at once (first come, first served). With workers on several machines, set it to "
        "four times their JOB_CONCURRENCY_* for the queue in all",
        shown_default="4 × the queue's JOB_CONCURRENCY_*",
        ge=0,
    )
    RELEASE_POLICY: Literal["fair", "fifo"] = setting(
        "fair",
        "fair: a free place goes to the user with the fewest steps in flight, then to their build "
        "with the fewest; fifo: the oldest build takes all it is owed first",
    )
    MAX_ACTIVE_BUILDS_PER_USER: int = setting(3, "a user's builds beyond this many wait their turn", ge=1)
    MAX_PENDING_BUILDS_PER_USER: int = setting(10, "waiting builds per user; one more start is a 429", ge=0)
    SSE_MAX_STREAM_S: Number = setting(
        300.0, "a build event stream then ends; the browser reconnects (Last-Event-ID), losing nothing", gt=0
    )
    SSE_SAFETY_POLL_S: Number = setting(
        20.0, "a waiting stream re-reads the database this often without a doorbell", gt=0
    )
    SSE_KEEPALIVE_S: Number = setting(15.0, "keep-alive comments on a quiet stream", gt=0)
    SSE_MAX_STREAMS_PER_USER: int = setting(
        20, "open streams per user across every web process (429 past it)", ge=1
    )
    WORKER_SHUTDOWN_TIMEOUT_S: Number = setting(25.0, "on SIGTERM, the time given to the jobs in hand", ge=0)
    ESTIMATED_MODULE_MINUTES: Number = setting(
        2.0, "the estimate per module until one has been measured", gt=0
    )
    GENERATOR: Literal["offline", "openai"] = setting(
        "offline",
        "offline: deterministic content, no key, no network; openai: OpenAI or any Chat Completions server",
    )
    OPENAI_BASE_URL: HttpUrl = setting("https://api.openai.com/v1", "the Chat Completions server")
    OPENAI_API_KEY: SecretText = setting("", "its key (a local server may need none)")
    OPENAI_MODEL: str = setting("gpt-4o-mini", "the model to ask, as the server names it")
    OPENAI_TIMEOUT_S: Number = setting(120.0, "a request taking longer is a timeout (transient)", gt=0)
    OPENAI_RESPONSE_FORMAT: Literal["auto", "json_schema", "json_object", "none"] = setting(
        "auto", "auto finds what the server takes (structured output, stepping down where refused); or fix it"
    )
    OPENAI_MAX_OUTPUT_TOKENS: int = setting(4096, "max_tokens of each request", ge=1)
    OPENAI_MAX_429_WAITS: int = setting(
        5, "429 answers a step waits out (without using an attempt) before it fails", ge=0
    )
    OPENAI_COOLDOWN_S: Number = setting(
        10.0, "every worker pauses this long after a timeout, connection error or 5xx", ge=0
    )
    OPENAI_PRICE_PROMPT_PER_1K: Number = setting(
        0.0, "price of 1,000 prompt tokens, for the cost estimate", ge=0
    )
    OPENAI_PRICE_COMPLETION_PER_1K: Number = setting(
        0.0, "price of 1,000 completion tokens, for the cost estimate", ge=0
    )
    GENERATOR_LATENCY_MS: int = setting(0, "offline: a delay per generation, to watch progress", ge=0)
    GENERATOR_FAILURE_RATE: Number = setting(
        0.0, "offline: the share of generations that fail (transient)", ge=0, le=1
    )
    GENERATOR_FAIL_ON: str = setting("", "offline: a title fragment whose generation always fails")
    ALERT_WEBHOOK_URL: HttpUrlOrBlank = setting(
        "", "dead letters and failed builds are POSTed here (Slack-compatible)"
    )
    ALERT_TIMEOUT_S: Number = setting(5.0, "how long an alert's POST may take", gt=0)
    LOG_LEVEL: LogLevel = setting("INFO", "the lowest level logged (under `make run`: WARNING)")
    LOG_FORMAT: Literal["text", "json"] = setting("text", "text, or json: one object per line")

    def app_config(self) -> dict[str, Any]:
        """The values app.config holds under the variables' own names (all but make run's PORT)."""
        return {name: value for name, value in self.model_dump().items() if _in_app_config(name)}

    @model_validator(mode="after")
    def _redis_url_from_the_seeds_names(self) -> Settings:
        if self.REDIS_URL is None:
            auth = f":{quote(self.REDIS_PASSWORD, safe='')}@" if self.REDIS_PASSWORD else ""
            self.REDIS_URL = f"redis://{auth}{self.REDIS_HOST}:{self.REDIS_PORT}/0"
        return self

    @model_validator(mode="after")
    def _sentinels_need_a_master(self) -> Settings:
        if self.REDIS_SENTINELS and not self.REDIS_SENTINEL_MASTER:
            raise PydanticCustomError(
                "sentinel_master", "REDIS_SENTINEL_MASTER is required with REDIS_SENTINELS"
            )
        return self

    @model_validator(mode="after")
    def _default_rate_limit(self) -> Settings:
        """Unset, the limit is a provider's (GENERATOR=openai), off for the offline generator."""
        if self.JOB_RATE_LIMIT_MAX is None:
            self.JOB_RATE_LIMIT_MAX = DEFAULT_RATE_LIMIT_MAX.get(self.GENERATOR, 0)
        return self


def _in_app_config(name: str) -> bool:
    extra = Settings.model_fields[name].json_schema_extra
    return not isinstance(extra, dict) or extra.get("in_app_config") is not False


def doc_default(name: str) -> str:
    """The default as the docs show it: its shown_default, else the value."""
    field = Settings.model_fields[name]
    extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
    shown = extra.get("shown_default")
    return str(shown) if shown is not None else str(field.default)


def read_settings(overrides: Mapping[str, Any] | None = None) -> Settings:
    """The settings from the environment; `overrides` (by variable name) win and are checked alike."""
    given = {name: value for name, value in (overrides or {}).items() if name in Settings.model_fields}
    try:
        return Settings(**given)
    except ValidationError as exc:
        raise InvalidSettings("\n".join(_refusals(exc, {**os.environ, **given}))) from None


def _refusals(exc: ValidationError, given: Mapping[str, Any]) -> Iterator[str]:
    """One sentence per refused variable: its name, its value as given (unless hidden) and what it
    accepts."""
    seen: set[str] = set()
    for error in exc.errors():
        if not error["loc"]:  # a rule across variables (e.g. Sentinels without a master name)
            yield str(error["msg"])
            continue
        name = str(error["loc"][0])
        if name in seen or name not in Settings.model_fields:
            continue
        seen.add(name)
        field = Settings.model_fields[name]
        shown = name if _markers(field, Hidden) else f"{name}={given.get(name, error['input'])!r}"
        yield f"{shown} is not accepted: {name} takes {accepted(field)}."


def accepted(field: FieldInfo) -> str:
    """What a setting accepts, in words: from its Accepts marker, its choices or its type and bounds."""
    described = _markers(field, Accepts)
    if described:
        return described[0].text
    kind = _value_type(field.annotation)
    if get_origin(kind) is Literal:
        choices = [str(choice) for choice in get_args(kind)]
        return f"{', '.join(choices[:-1])} or {choices[-1]}"
    if kind is bool:
        return "true or false (also 1/0, yes/no, on/off)"
    if kind is int:
        return _bounded("a whole number", field)
    if kind is float:  # Number
        return _bounded("a number", field)
    return "any text"


def _value_type(annotation: Any) -> Any:
    """The type under `X | None` and `Annotated[...]`."""
    if get_origin(annotation) in (Union, types.UnionType):
        annotation = next(arg for arg in get_args(annotation) if arg is not type(None))
    if get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    return annotation


def _markers(field: FieldInfo, marker: type[Marker]) -> list[Marker]:
    """Metadata of type `marker`, on the field or on the Annotated type inside its `X | None`."""
    found = list(field.metadata)
    if get_origin(field.annotation) in (Union, types.UnionType):
        for arg in get_args(field.annotation):
            found += list(getattr(arg, "__metadata__", ()))
    return [item for item in found if isinstance(item, marker)]


def _bounded(noun: str, field: FieldInfo) -> str:
    limits = [
        f"{sign} {_number(getattr(item, attribute))}"
        for item in field.metadata
        for kind, attribute, sign in _BOUNDS
        if isinstance(item, kind)
    ]
    return " ".join([noun, *limits[:1], *(f"and {limit}" for limit in limits[1:])])


_BOUNDS = (
    (annotated_types.Ge, "ge", ">="),
    (annotated_types.Gt, "gt", ">"),
    (annotated_types.Le, "le", "<="),
    (annotated_types.Lt, "lt", "<"),
)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
