"""The `slow` marker is true: a test that starts a process without it fails and says why, so
`make test-fast` (`-m "not slow"`) never starts a worker, gunicorn or a browser."""

from __future__ import annotations

import sys

import pytest

from tests.services import ProcessGroup


def test_a_test_not_marked_slow_cannot_start_a_process(tmp_path):
    with pytest.raises(
        AssertionError, match="test_a_test_not_marked_slow_cannot_start_a_process starts a process"
    ):
        ProcessGroup([sys.executable, "-c", "pass"], {}, tmp_path / "refused.log")

    assert not (tmp_path / "refused.log").exists(), "refused before anything started"


@pytest.mark.slow
def test_a_test_marked_slow_may_start_one(tmp_path):
    group = ProcessGroup([sys.executable, "-c", "print('ran')"], {}, tmp_path / "allowed.log")

    assert group.process.wait(timeout=30) == 0
    assert "ran" in group.output()
    group.stop()
