"""Redis settings: the seed's REDIS_HOST / REDIS_PORT / REDIS_PASSWORD, and bad Sentinel
settings that stop a process at start with the variable's name."""

from __future__ import annotations

import subprocess
import sys

import pytest

from app import create_app
from app.config import load_settings
from tests.services import ROOT


def test_the_seeds_redis_host_port_and_password_are_used_when_redis_url_is_unset(monkeypatch):
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv("REDIS_HOST", "cache.internal")
    monkeypatch.setenv("REDIS_PORT", "6380")
    monkeypatch.setenv("REDIS_PASSWORD", "p@ss word")
    assert load_settings()["REDIS_URL"] == "redis://:p%40ss%20word@cache.internal:6380/0"

    monkeypatch.setenv("REDIS_URL", "redis://elsewhere:6379/2")  # parsed only
    assert load_settings()["REDIS_URL"] == "redis://elsewhere:6379/2"  # parsed only


def test_an_app_reaches_redis_through_redis_host_and_port(redis_server, service_env, monkeypatch):
    monkeypatch.delenv("REDIS_URL")
    monkeypatch.setenv("REDIS_HOST", "127.0.0.1")
    monkeypatch.setenv("REDIS_PORT", str(redis_server.port))
    monkeypatch.delenv("REDIS_SENTINELS", raising=False)
    app = create_app({"TESTING": True})
    app.extensions["redis"].set("reached-through-redis-host", "1")
    assert redis_server.client().get("reached-through-redis-host") == b"1"


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"REDIS_SENTINELS": "127.0.0.1:26379"}, "REDIS_SENTINEL_MASTER"),  # parsed only
        ({"REDIS_SENTINELS": "127.0.0.1", "REDIS_SENTINEL_MASTER": "m"}, "REDIS_SENTINELS"),
        ({"REDIS_SENTINELS": "a:1,b:port", "REDIS_SENTINEL_MASTER": "m"}, "REDIS_SENTINELS"),
        ({"REDIS_URL": "", "REDIS_PORT": "six"}, "REDIS_PORT"),
    ],
)
@pytest.mark.slow
def test_a_bad_redis_setting_stops_the_worker_at_start_naming_it(settings, named, service_env):
    env = {**service_env, "REDIS_SENTINEL_MASTER": "", **settings}
    result = subprocess.run(
        [sys.executable, "worker.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert named in result.stderr.strip().splitlines()[-1]
