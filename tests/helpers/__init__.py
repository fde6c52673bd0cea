"""Helpers shared by test modules, one module per topic: api (create, start, wait through the JSON
API), web (forms with their CSRF token), users, browser (Chromium fixtures), builds, queries (SQL
counting), apps, llm (the fake provider's settings) and workers (RQ workers and registries).
Tests import from here, never from each other.

The API helpers are re-exported so `from tests.helpers import create_path` keeps working.
"""

from __future__ import annotations

from tests.helpers.api import (
    build_of,
    create_path,
    create_workflow,
    start_build,
    status_of,
    wait_for_build,
    wait_for_status,
)

__all__ = [
    "build_of",
    "create_path",
    "create_workflow",
    "start_build",
    "status_of",
    "wait_for_build",
    "wait_for_status",
]
