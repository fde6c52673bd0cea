"""The README's commands work as written: each `flask …` line is run here, from a shell that
only did what the README says (enter .venv once, set APP_ENV), and every other command is either run by a
named test or by CI, or is listed below with the reason it cannot run here."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.services import ROOT

README = ROOT / "README.md"
ENTER_THE_ENVIRONMENT = ". .venv/bin/activate"
# A new terminal has no SECRET_KEY: the README says to choose development (make run's own key).
CHOOSE_DEVELOPMENT = "export APP_ENV=development"
SET_UP = (ENTER_THE_ENVIRONMENT, CHOOSE_DEVELOPMENT)
# Commands run somewhere else exactly as written: where, checked below.
RUN_ELSEWHERE = {
    "make run": "tests/test_first_run.py",
    "make test": ".ci/run",
    "make test-postgres": ".ci/run",
}
# Commands no test can run on this machine, and why.
NOT_RUN_HERE = {
    "make test-fast": "a part of `make test` (which CI runs): run inside the suite, it would run twice",
    "make bench": "the full benchmark takes tens of minutes; CI runs its --quick form",
    "make chaos": "the full chaos suite takes tens of minutes; CI runs its --quick form",
    "make chaos-postgres": "CI runs it with CHAOS_FLAGS=--quick",
    "GENERATOR=openai OPENAI_API_KEY=sk-... OPENAI_MODEL=gpt-4o-mini make run": "needs an OpenAI key",
    "GENERATOR=openai OPENAI_BASE_URL=http://localhost:11434/v1 OPENAI_MODEL=llama3.1 make run": (
        "needs a local Ollama"
    ),
    'curl -N -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8000/api/jobs/$JOB_ID/stream': (
        "needs a running server and a token; tests/test_sse_scale.py reads the same stream over HTTP"
    ),
    'curl -N -H "Authorization: Bearer $TOKEN" -H "Last-Event-ID: 41" '
    "http://127.0.0.1:8000/api/v3/workflow/$WORKFLOW_ID/step10/stream": (
        "needs a running server and a token; tests/test_stream_push.py reads the same stream"
    ),
}


def readme_commands() -> list[str]:
    """Each command line of the README's ```sh blocks, then each `flask …` named in its text."""
    text = README.read_text()
    commands = []
    for block in re.findall(r"^```sh\n(.*?)^```", text, re.MULTILINE | re.DOTALL):
        for line in block.splitlines():
            command = re.split(r"\s+#", line, maxsplit=1)[0].strip()
            if command and not command.startswith("#"):
                commands.append(command)
    commands += re.findall(r"`(flask --app wsgi [^`]+)`", text)
    return commands


def readme_set_up() -> list[str]:
    """What the README has a reader type before its first `flask` command: entering .venv and
    each `export`, run here only because the README shows them."""
    commands = readme_commands()
    first_flask = next(i for i, command in enumerate(commands) if command.startswith("flask "))
    return [c for c in commands[:first_flask] if c == ENTER_THE_ENVIRONMENT or c.startswith("export ")]


def _outside_the_environment(env: dict[str, str]) -> dict[str, str]:
    """A shell as a new terminal opens it: .venv is neither active nor on PATH, and neither
    SECRET_KEY nor APP_ENV is set."""
    venv_bin = str(ROOT / ".venv" / "bin")
    path = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if p != venv_bin)
    unset = ("VIRTUAL_ENV", "SECRET_KEY", "APP_ENV")
    return {**{k: v for k, v in env.items() if k not in unset}, "PATH": path}


def test_the_readme_says_how_to_enter_the_environment_before_its_first_flask_command():
    commands = readme_commands()
    first_flask = next(i for i, command in enumerate(commands) if command.startswith("flask "))

    assert all(step in commands[:first_flask] for step in SET_UP), commands[:first_flask]


@pytest.mark.slow
def test_every_flask_command_in_the_readme_works_as_written(service_env, tmp_path):
    commands = list(
        dict.fromkeys(c for c in readme_commands() if c.startswith("flask ") or c == "deactivate")
    )
    env = {**_outside_the_environment(service_env), "INSTANCE_DIR": str(tmp_path / "instance")}
    set_up = readme_set_up()
    assert len(commands) >= 9, commands

    for command in commands:  # in the README's order: one database, as a reader goes along
        result = subprocess.run(
            ["bash", "-c", " && ".join((*set_up, command))],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
        assert "Traceback" not in result.stderr, f"{command}\n{result.stderr}"


def test_every_other_command_in_the_readme_is_run_somewhere_or_says_why_not():
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    others = [c for c in readme_commands() if not c.startswith("flask ") and c not in (*SET_UP, "deactivate")]

    for command in others:
        assert command in RUN_ELSEWHERE or command in NOT_RUN_HERE, (
            f"{command!r} is in the README: run it in a test, or say where it runs"
        )
        where = RUN_ELSEWHERE.get(command)
        if where == ".ci/run":
            assert command in ci_lines, f"{command!r} is not a line of .ci/run"
        elif where:
            argv = repr(command.split()).replace("'", '"')
            assert argv in Path(ROOT / where).read_text(), f"{where} does not run {command!r}"
