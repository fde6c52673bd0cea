"""Typed settings (app/settings.py): a value a setting does not accept stops web, worker and CLI at
start naming the variable and what it takes; every setting keeps its name, default and meaning;
README's table and .env.example are the registry's own words."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import app.config as config
from app import create_app
from app.config import INSTANCE_DIR, load_settings
from app.settings import InvalidSettings, Settings
from app.settings_docs import ENV_EXAMPLE, README, TABLE_END, env_example, main, stale_documents
from tests.services import ROOT, free_port

# app.config as it was before the settings were typed, with nothing set: every key and default.
DEFAULT_CONFIG: dict[str, Any] = {
    "APP_ENV": "production",
    "SECRET_KEY": "",
    "SQLALCHEMY_DATABASE_URI": f"sqlite:///{INSTANCE_DIR / 'curriculum.db'}",
    "REDIS_URL": "redis://localhost:6379/0",  # the default, parsed only
    "MAX_CONTENT_LENGTH": 262144,
    "SESSION_COOKIE_SECURE": False,
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
    "REMEMBER_COOKIE_SECURE": False,
    "REMEMBER_COOKIE_HTTPONLY": True,
    "WTF_CSRF_TIME_LIMIT": None,
    "SESSION_MAX_AGE_S": 1209600,
    "PERMANENT_SESSION_LIFETIME": 1209600,
    "SIGNIN_FAILURE_LIMIT_PER_ACCOUNT": "10 per 15 minutes",
    "SIGNIN_FAILURE_LIMIT_PER_ADDRESS": "50 per 15 minutes",
    "API_TOKEN_FAILURE_LIMIT": "30 per 15 minutes",
    "TRUSTED_PROXY_HOPS": 0,
    "POLL_INTERVAL_S": 3.0,
    "JOB_MAX_ATTEMPTS": 3,
    "JOB_BACKOFF_TYPE": "exponential",
    "JOB_BACKOFF_DELAY": 1000,
    "JOB_TIMEOUT_S": 1800,
    "JOB_KEEP_COMPLETED_S": 86400,
    "JOB_KEEP_FAILED_S": 604800,
    "JOB_LEASE_TTL_S": 30.0,
    "JOB_RECOVERY_INTERVAL_S": 10.0,
    "JOB_MAX_WORKER_LOSSES": 2,
    "JOB_RATE_LIMIT_MAX": 0,
    "JOB_RATE_LIMIT_DURATION": 60000,
    "JOB_RATE_LIMIT_TOKENS": 0,
    "JOB_CONCURRENCY_DECOMPOSE": 3,
    "JOB_CONCURRENCY_GENERATE_KU": 5,
    "MAX_ACTIVE_BUILDS_PER_USER": 3,
    "WORKER_SHUTDOWN_TIMEOUT_S": 25.0,
    "ESTIMATED_MODULE_MINUTES": 2.0,
    "GENERATOR": "offline",
    "OPENAI_BASE_URL": "https://api.openai.com/v1",
    "OPENAI_API_KEY": "",
    "OPENAI_MODEL": "gpt-4o-mini",
    "OPENAI_TIMEOUT_S": 120.0,
    "OPENAI_RESPONSE_FORMAT": "auto",
    "OPENAI_MAX_OUTPUT_TOKENS": 4096,
    "OPENAI_MAX_429_WAITS": 5,
    "OPENAI_COOLDOWN_S": 10.0,
    "OPENAI_PRICE_PROMPT_PER_1K": 0.0,
    "OPENAI_PRICE_COMPLETION_PER_1K": 0.0,
    "GENERATOR_LATENCY_MS": 0,
    "GENERATOR_FAILURE_RATE": 0.0,
    "GENERATOR_FAIL_ON": "",
    "ALERT_WEBHOOK_URL": "",
    "ALERT_TIMEOUT_S": 5.0,
    "LOG_LEVEL": "INFO",
    "LOG_FORMAT": "text",
}
WHOLE_NUMBER_FROM_1 = "a whole number >= 1"
HTTP_URL = "an http:// or https:// URL"


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No registry variable set, no .env file read; each is restored (or removed) afterwards."""
    for name in Settings.model_fields:
        monkeypatch.setenv(name, "")  # recorded first, so a value .env adds is removed too
        monkeypatch.delenv(name)
    monkeypatch.setattr(config, "DOTENV_FILE", tmp_path / "no.env")
    return monkeypatch


def _refusal(environment: pytest.MonkeyPatch, **variables: str) -> str:
    """The message of the InvalidSettings that create_app raises with `variables` set."""
    for name, value in {"SECRET_KEY": "a-real-secret-for-these-tests", **variables}.items():
        environment.setenv(name, value)
    with pytest.raises(InvalidSettings) as refused:
        create_app()
    return str(refused.value)


# --- a bad value stops the app, naming the variable and what it accepts ---------------------


def test_a_misspelt_backoff_type_stops_the_app_instead_of_meaning_exponential(environment):
    message = _refusal(environment, JOB_BACKOFF_TYPE="fixd")

    assert message == "JOB_BACKOFF_TYPE='fixd' is not accepted: JOB_BACKOFF_TYPE takes exponential or fixed."


@pytest.mark.parametrize(
    ("name", "value", "accepts"),
    [
        pytest.param("JOB_MAX_ATTEMPTS", "three", WHOLE_NUMBER_FROM_1, id="int: not a number"),
        pytest.param("JOB_MAX_ATTEMPTS", "0", WHOLE_NUMBER_FROM_1, id="int: below its bound"),
        pytest.param("MAX_ACTIVE_BUILDS_PER_USER", "2.5", WHOLE_NUMBER_FROM_1, id="int: a fraction"),
        pytest.param("PORT", "70000", "a whole number >= 1 and <= 65535", id="int: above its bound"),
        pytest.param("JOB_LEASE_TTL_S", "soon", "a number > 0", id="float: not a number"),
        pytest.param("POLL_INTERVAL_S", "nan", "a number > 0", id="float: nan"),
        pytest.param("OPENAI_TIMEOUT_S", "inf", "a number > 0", id="float: infinite"),
        pytest.param("GENERATOR_FAILURE_RATE", "1.5", "a number >= 0 and <= 1", id="float: out of range"),
        pytest.param("SESSION_COOKIE_SECURE", "ture", "true or false", id="bool: misspelt"),
        pytest.param("GENERATOR", "gpt-4", "offline or openai", id="choice: GENERATOR"),
        pytest.param("LOG_FORMAT", "xml", "text or json", id="choice: LOG_FORMAT"),
        pytest.param(
            "OPENAI_RESPONSE_FORMAT", "yaml", "auto, json_schema, json_object or none", id="choice: format"
        ),
        pytest.param("LOG_LEVEL", "loud", "DEBUG, INFO, WARNING, ERROR or CRITICAL", id="choice: LOG_LEVEL"),
        pytest.param("APP_ENV", "staging", "production or development", id="choice: APP_ENV"),
        pytest.param("OPENAI_BASE_URL", "api.openai.com/v1", HTTP_URL, id="url: no scheme"),
        pytest.param("OPENAI_BASE_URL", "ftp://example.com", HTTP_URL, id="url: another scheme"),
        pytest.param(
            "SIGNIN_FAILURE_LIMIT_PER_ACCOUNT", "ten a minute", "'10 per 15 minutes'", id="limit: unreadable"
        ),
    ],
)
def test_a_bad_value_stops_the_app_naming_the_variable_its_value_and_what_it_takes(
    environment, name, value, accepts
):
    message = _refusal(environment, **{name: value})

    assert message.startswith(f"{name}={value!r} is not accepted: {name} takes ")
    assert accepts in message


@pytest.mark.parametrize(
    ("name", "value", "accepts"),
    [
        pytest.param("DATABASE_URL", "postgresql//admin:hunter2@db/app", "a database URL", id="database"),
        pytest.param(  # parsed only, never dialled
            "REDIS_URL",
            "localhost:6379?password=hunter2",  # parsed only
            "a redis://, rediss:// or unix://",
            id="redis",
        ),
        pytest.param("ALERT_WEBHOOK_URL", "hooks.slack.com/services/hunter2", HTTP_URL, id="webhook"),
    ],
)
def test_a_bad_url_that_may_hold_a_password_is_named_without_its_value(environment, name, value, accepts):
    message = _refusal(environment, **{name: value})

    assert message.startswith(f"{name} is not accepted: {name} takes {accepts}")
    assert "hunter2" not in message


def test_every_refused_variable_is_named_at_once(environment):
    message = _refusal(environment, JOB_BACKOFF_TYPE="fixd", JOB_TIMEOUT_S="-1")

    assert message.splitlines() == [
        "JOB_BACKOFF_TYPE='fixd' is not accepted: JOB_BACKOFF_TYPE takes exponential or fixed.",
        "JOB_TIMEOUT_S='-1' is not accepted: JOB_TIMEOUT_S takes a whole number >= 1.",
    ]


def test_a_bad_value_in_the_env_file_is_refused_like_one_in_the_environment(environment, tmp_path):
    dotenv = tmp_path / ".env"
    dotenv.write_text("JOB_BACKOFF_TYPE=fixd\n")
    environment.setattr(config, "DOTENV_FILE", dotenv)

    assert _refusal(environment).startswith("JOB_BACKOFF_TYPE='fixd' is not accepted")


def test_an_override_of_a_setting_is_checked_like_the_environment(environment):
    environment.setenv("SECRET_KEY", "a-real-secret-for-these-tests")

    with pytest.raises(InvalidSettings, match="JOB_MAX_ATTEMPTS='many' is not accepted"):
        create_app({"JOB_MAX_ATTEMPTS": "many"})


@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "worker.py"],
        [sys.executable, "-m", "flask", "--app", "wsgi", "jobs", "reconcile"],
        [sys.executable, "-m", "gunicorn", "wsgi:app", "--bind", "127.0.0.1:0", "--workers", "1"],
    ],
    ids=["worker", "cli", "gunicorn"],
)
@pytest.mark.slow
def test_worker_cli_and_web_exit_naming_a_bad_setting(service_env, command):
    env = {**service_env, "JOB_BACKOFF_TYPE": "fixd"}

    finished = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)

    assert finished.returncode != 0
    expected = "JOB_BACKOFF_TYPE='fixd' is not accepted: JOB_BACKOFF_TYPE takes exponential or fixed."
    assert expected in finished.stderr


@pytest.mark.slow
def test_the_worker_says_it_refused_to_start_in_one_line_without_a_traceback(service_env):
    env = {**service_env, "SESSION_COOKIE_SECURE": "ture"}

    finished = subprocess.run(
        [sys.executable, "worker.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )

    assert finished.returncode == 1
    assert finished.stderr.strip() == (
        "worker refused to start: SESSION_COOKIE_SECURE='ture' is not accepted: "
        "SESSION_COOKIE_SECURE takes true or false (also 1/0, yes/no, on/off)."
    )


@pytest.mark.slow
def test_make_run_refuses_a_bad_setting_in_one_sentence_before_starting_anything(tmp_path):
    env = {name: value for name, value in os.environ.items() if name not in ("REDIS_URL", "DATABASE_URL")}
    env.update(INSTANCE_DIR=str(tmp_path / "instance"), PORT=str(free_port()), JOB_BACKOFF_TYPE="fixd")

    finished = subprocess.run(
        [sys.executable, "-m", "app.devserver"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )

    assert finished.returncode == 1
    assert finished.stderr.strip() == (
        "make run refused to start: JOB_BACKOFF_TYPE='fixd' is not accepted: "
        "JOB_BACKOFF_TYPE takes exponential or fixed."
    )
    assert not (tmp_path / "instance" / "redis").exists(), "no Redis was started"


# --- good values: read, typed, and kept as they always were --------------------------------


def test_with_nothing_set_app_config_holds_every_old_key_with_its_old_default_and_type(environment):
    loaded = load_settings()

    kept = {name: loaded.get(name, "<missing>") for name in DEFAULT_CONFIG}
    assert kept == DEFAULT_CONFIG
    assert {name: type(loaded[name]) for name in DEFAULT_CONFIG} == {
        name: type(value) for name, value in DEFAULT_CONFIG.items()
    }
    assert set(loaded) - set(DEFAULT_CONFIG) <= set(Settings.model_fields), "new keys come from the registry"


def test_values_from_the_environment_arrive_typed(environment):
    environment.setenv("JOB_MAX_ATTEMPTS", " 100 ")
    environment.setenv("POLL_INTERVAL_S", "0.5")
    environment.setenv("SESSION_COOKIE_SECURE", "yes")
    environment.setenv("JOB_BACKOFF_TYPE", "fixed")

    loaded = load_settings()

    assert (loaded["JOB_MAX_ATTEMPTS"], loaded["POLL_INTERVAL_S"]) == (100, 0.5)
    assert loaded["SESSION_COOKIE_SECURE"] is True and loaded["JOB_BACKOFF_TYPE"] == "fixed"


def test_overrides_take_python_values_or_strings_and_pass_other_keys_through(environment):
    loaded = load_settings({"JOB_MAX_ATTEMPTS": "5", "JOB_LEASE_TTL_S": 1.5, "TESTING": True})

    assert (loaded["JOB_MAX_ATTEMPTS"], loaded["JOB_LEASE_TTL_S"], loaded["TESTING"]) == (5, 1.5, True)


def test_an_empty_variable_means_its_default(environment):
    environment.setenv("JOB_MAX_ATTEMPTS", "")
    environment.setenv("DATABASE_URL", "")

    loaded = load_settings()

    assert loaded["JOB_MAX_ATTEMPTS"] == 3
    assert loaded["SQLALCHEMY_DATABASE_URI"] == DEFAULT_CONFIG["SQLALCHEMY_DATABASE_URI"]


def test_the_env_file_fills_in_what_the_environment_leaves_unset_and_never_wins(environment, tmp_path):
    dotenv = tmp_path / ".env"
    dotenv.write_text("JOB_MAX_ATTEMPTS=7\nLOG_FORMAT=json\n")
    environment.setattr(config, "DOTENV_FILE", dotenv)
    environment.setenv("LOG_FORMAT", "text")

    loaded = load_settings()

    assert (loaded["JOB_MAX_ATTEMPTS"], loaded["LOG_FORMAT"]) == (7, "text")


@pytest.mark.parametrize(
    ("given", "used"),
    [
        ("postgres://ada:pw@db:5432/cb", "postgresql+psycopg://ada:pw@db:5432/cb"),  # parsed only
        ("postgresql://ada:pw@db/cb", "postgresql+psycopg://ada:pw@db/cb"),
        ("postgresql+psycopg://ada:pw@db/cb", "postgresql+psycopg://ada:pw@db/cb"),
        ("sqlite:////var/lib/cb/cb.db", "sqlite:////var/lib/cb/cb.db"),
    ],
)
def test_a_postgres_url_gets_the_psycopg_driver_and_any_other_url_is_kept(environment, given, used):
    environment.setenv("DATABASE_URL", given)

    assert load_settings()["SQLALCHEMY_DATABASE_URI"] == used


@pytest.mark.parametrize(
    ("environment_given", "overrides", "limit"),
    [
        pytest.param({}, {}, 0, id="offline: no limit"),
        pytest.param({"GENERATOR": "openai"}, {}, 10, id="openai: 10"),
        pytest.param({}, {"GENERATOR": "openai"}, 10, id="openai by override: 10"),
        pytest.param(
            {"GENERATOR": "openai"}, {"JOB_RATE_LIMIT_MAX": 3}, 3, id="set by override: the setting"
        ),
    ],
)
def test_the_default_rate_limit_follows_the_generator(environment, environment_given, overrides, limit):
    for name, value in environment_given.items():
        environment.setenv(name, value)

    assert load_settings(overrides)["JOB_RATE_LIMIT_MAX"] == limit


def test_session_settings_also_set_what_flask_reads_from_them(environment):
    environment.setenv("SESSION_COOKIE_SECURE", "1")
    environment.setenv("SESSION_MAX_AGE_S", "600")

    loaded = load_settings()

    assert loaded["REMEMBER_COOKIE_SECURE"] is True
    assert loaded["PERMANENT_SESSION_LIFETIME"] == loaded["SESSION_MAX_AGE_S"] == 600


def test_app_env_and_log_level_are_read_whatever_their_case(environment, tmp_path):
    environment.setattr(config, "SECRET_KEY_FILE", tmp_path / "secret-key")
    environment.setenv("APP_ENV", " Development ")
    environment.setenv("LOG_LEVEL", "warning")

    loaded = load_settings()

    assert (loaded["APP_ENV"], loaded["LOG_LEVEL"]) == ("development", "WARNING")
    assert loaded["SECRET_KEY"] == (tmp_path / "secret-key").read_text(), "development's own secret"


def test_several_limits_in_one_setting_are_accepted(environment):
    environment.setenv("API_TOKEN_FAILURE_LIMIT", "5 per minute; 20 per hour")

    assert load_settings()["API_TOKEN_FAILURE_LIMIT"] == "5 per minute; 20 per hour"


@pytest.mark.slow
def test_instance_dir_comes_from_the_environment(tmp_path):
    env = {**os.environ, "INSTANCE_DIR": str(tmp_path / "elsewhere")}
    script = (
        "from app.config import INSTANCE_DIR, SECRET_KEY_FILE; print(INSTANCE_DIR); print(SECRET_KEY_FILE)"
    )

    finished = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    assert finished.stdout.split() == [
        str(tmp_path / "elsewhere"),
        str(tmp_path / "elsewhere" / "secret-key"),
    ]


# --- the docs are generated from the registry ----------------------------------------------


def test_readme_and_env_example_say_what_the_registry_says():
    assert stale_documents() == [], "run: python -m app.settings_docs"
    assert main(["--check"]) == 0


def test_every_setting_says_what_it_means():
    for name, field in Settings.model_fields.items():
        assert field.description and field.description.strip(), f"{name} needs a meaning"


def test_every_setting_has_a_row_in_readme_and_a_line_in_env_example():
    table = README.read_text().split(TABLE_END)[0]

    for name in Settings.model_fields:
        assert f"| `{name}` |" in table
        assert f"\n# {name}=" in ENV_EXAMPLE.read_text()


def test_the_check_names_a_document_that_no_longer_matches(tmp_path):
    readme, env_file = tmp_path / "README.md", tmp_path / ".env.example"
    readme.write_text(README.read_text().replace("| `JOB_BACKOFF_TYPE` |", "| `JOB_BACKOFF_KIND` |"))
    env_file.write_text(env_example())

    assert stale_documents(readme, env_file) == [readme]
    env_file.write_text(env_example().replace("# JOB_MAX_ATTEMPTS=3\n", ""))
    assert stale_documents(readme, env_file) == [readme, env_file]


def test_an_env_example_line_uncommented_is_read_as_its_default(environment, tmp_path):
    """Every `# NAME=value` line of .env.example, uncommented into a .env, gives the defaults."""
    dotenv = tmp_path / ".env"
    lines = re.findall(r"^# ([A-Z0-9_]+=.*)$", env_example(), re.MULTILINE)
    assert len(lines) == len(Settings.model_fields)
    dotenv.write_text("\n".join(lines) + "\n")
    defaults = load_settings()
    environment.setattr(config, "DOTENV_FILE", dotenv)

    assert load_settings() == defaults
