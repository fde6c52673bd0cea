"""The first run, as a newcomer does it: `make run` (`python -m app.devserver`) in an instance
directory of its own, what it prints, signing in with that, a taken port, and Ctrl-C in the
middle of a build."""

from __future__ import annotations

import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from playwright.sync_api import expect, sync_playwright

from tests.helpers import build_of, create_path, start_build, wait_for_build
from tests.helpers.browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS
from tests.services import ROOT, ProcessGroup, free_port, wait_until

DEVSERVER = [sys.executable, "-m", "app.devserver"]
# Settings of the developer's shell that would point the dev server away from its own services,
# and an outer make's (under `make test`), so `make run` starts as it does in a fresh terminal.
NOT_INHERITED = {
    "REDIS_URL",
    "DATABASE_URL",
    "PORT",
    "LOG_LEVEL",
    "INSTANCE_DIR",
    "MAKEFLAGS",
    "MAKELEVEL",
    "MFLAGS",
}


@pytest.fixture
def devserver_env(tmp_path: Path) -> dict[str, str]:
    """What `make run` sees in a fresh clone, with instance/ moved into the test's directory."""
    env = {name: value for name, value in os.environ.items() if name not in NOT_INHERITED}
    return {
        **env,
        "INSTANCE_DIR": str(tmp_path / "instance"),
        "PORT": str(free_port()),
        "JOB_CONCURRENCY_DECOMPOSE": "1",  # two shared cores: fewer processes start faster
        "JOB_CONCURRENCY_GENERATE_KU": "2",
    }


class DevServer:
    """One `make run` (or `python -m app.devserver`) in its own process group, as in a terminal."""

    def __init__(self, argv: list[str], env: dict[str, str], log_path: Path) -> None:
        self.group = ProcessGroup(argv, env, log_path)

    def announcement(self, timeout: float = 120) -> dict[str, str]:
        """What it printed once it runs: the URL and, on a first run, the admin's sign-in."""
        text = wait_until(
            lambda: "is running at" in (out := self.group.output()) and out,
            timeout=timeout,
            interval=0.2,
            message="the dev server to say it runs",
        )
        printed = {"url": re.search(r"is running at (http://\S+)/", text).group(1)}
        for key, label in (("email", "email"), ("password", "password"), ("token", "API token")):
            if match := re.search(rf"^{label}: (\S+)$", text, re.MULTILINE):
                printed[key] = match.group(1)
        return printed

    def ctrl_c(self, timeout: float = 90) -> tuple[int, str]:
        """SIGINT to the whole process group, as the terminal sends it; wait for the last line."""
        before = len(self.group.output())
        self.group.signal_group(signal.SIGINT)
        returncode = self.group.process.wait(timeout=timeout)
        deadline = time.monotonic() + timeout  # make may exit before the dev server it ran
        while "Stopped." not in self.group.output()[before:] and time.monotonic() < deadline:
            time.sleep(0.2)
        return returncode, self.group.output()[before:]

    def stop(self) -> None:
        self.group.stop(timeout=60)


@pytest.fixture
def devservers() -> Iterator[list[DevServer]]:
    started: list[DevServer] = []
    yield started
    for server in started:
        server.stop()


def _start(devservers: list[DevServer], argv: list[str], env: dict[str, str], log: Path) -> DevServer:
    server = DevServer(argv, env, log)
    devservers.append(server)
    return server


@pytest.mark.slow
def test_a_taken_port_is_said_plainly_and_nothing_starts(devserver_env):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            DEVSERVER, cwd=ROOT, env={**devserver_env, "PORT": str(port)}, capture_output=True, text=True
        )

    assert result.returncode == 1
    assert f"Port {port} is already in use" in result.stderr
    assert f"PORT={port + 1} make run" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert not (Path(devserver_env["INSTANCE_DIR"]) / "redis").exists(), "no Redis was started"


@pytest.mark.slow
def test_a_port_that_is_not_a_number_is_refused(devserver_env):
    result = subprocess.run(
        DEVSERVER, cwd=ROOT, env={**devserver_env, "PORT": "eighty"}, capture_output=True, text=True
    )

    assert result.returncode == 1
    assert "PORT='eighty' is not a port number (1 to 65535)." in result.stderr


def _api(base: str, token: str, method: str, path: str, **kwargs: Any) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"}
    return requests.request(method, f"{base}{path}", headers=headers, timeout=30, **kwargs)


def _stored_build(instance: Path) -> tuple[str, int]:
    """The build's status and stored knowledge units, read from the SQLite file itself."""
    with sqlite3.connect(instance / "curriculum.db") as conn:
        status = conn.execute("SELECT status FROM build_jobs").fetchone()[0]
        units = conn.execute("SELECT count(*) FROM knowledge_units").fetchone()[0]
    return status, units


@pytest.mark.slow
def test_ctrl_c_mid_build_stops_cleanly_and_a_restart_finishes_the_build(devservers, devserver_env, tmp_path):
    env = {
        **devserver_env,
        "JOB_RATE_LIMIT_MAX": "0",
        "GENERATOR_LATENCY_MS": "400",
        "JOB_LEASE_TTL_S": "3",
        "JOB_RECOVERY_INTERVAL_S": "1",
    }
    first = _start(devservers, DEVSERVER, env, tmp_path / "first.log")
    printed = first.announcement()
    base, token = printed["url"], printed["token"]
    body = {"name": "Statistics for Nurses", "topic": "statistics", "conceptCount": 4}
    path_id = _api(base, token, "POST", "/api/learning-paths", json=body).json()["id"]
    build_id = _api(base, token, "POST", f"/api/jobs/build/{path_id}").json()["jobId"]
    wait_until(
        lambda: _api(base, token, "GET", f"/api/jobs/{build_id}").json()["completedKnowledgeUnits"] > 0,
        timeout=90,
        interval=0.1,
        message="the first knowledge units",
    )

    returncode, said = first.ctrl_c()

    assert returncode == 0, said
    assert "Traceback" not in first.group.output() and " ERROR " not in said
    assert [line for line in said.splitlines() if line.strip()] == [
        "Stopping: web and worker finish what they hold, then Redis…",
        "Stopped.",
    ]
    status, units_at_stop = _stored_build(Path(env["INSTANCE_DIR"]))
    assert status == "processing", "the build was still running when Ctrl-C came"

    second = _start(devservers, DEVSERVER, env, tmp_path / "second.log")
    base = second.announcement()["url"]
    build = wait_until(
        lambda: (
            (b := _api(base, token, "GET", f"/api/jobs/{build_id}").json())["status"] == "completed" and b
        ),
        timeout=120,
        interval=0.2,
        message="the build to complete after the restart",
    )
    concepts = _api(base, token, "GET", f"/api/learning-paths/{path_id}").json()["concepts"]
    subs = [sub for concept in concepts for sub in concept["subConcepts"]]
    units = [unit for sub in subs for unit in sub["knowledgeUnits"]]
    assert build["totalConcepts"] == build["completedConcepts"] == len(concepts) == 4
    assert build["totalSubConcepts"] == build["completedSubConcepts"] == len(subs)
    assert build["totalKnowledgeUnits"] == build["completedKnowledgeUnits"] == len(units) > units_at_stop
    assert len({unit["id"] for unit in units}) == len(units)
    for sub in subs:  # nothing stored twice: positions are 0, 1, 2, … under each sub-concept
        assert sorted(unit["position"] for unit in sub["knowledgeUnits"]) == list(
            range(len(sub["knowledgeUnits"]))
        )
    assert second.ctrl_c()[0] == 0


@pytest.mark.slow
def test_the_admin_that_make_run_prints_signs_in_on_the_page(devservers, devserver_env, tmp_path):
    server = _start(devservers, ["make", "run"], devserver_env, tmp_path / "make-run.log")
    printed = server.announcement()
    saved = (Path(devserver_env["INSTANCE_DIR"]) / "first-admin.txt").read_text()

    assert saved == (
        f"email: {printed['email']}\npassword: {printed['password']}\nAPI token: {printed['token']}\n"
    )
    assert printed["email"] == "admin@localhost"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.goto(printed["url"])  # the printed URL, as a newcomer clicks it
        expect(page).to_have_url(re.compile(r"/sign-in"))
        page.fill("#email", printed["email"])
        page.fill("#password", printed["password"])
        page.click("button:has-text('Sign in')")
        expect(page).to_have_url(f"{printed['url']}/")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=ARTIFACTS / "first-run-signed-in.png", full_page=True)
        browser.close()
    _, said = server.ctrl_c()
    assert "Traceback" not in server.group.output() and "\nStopped.\n" in said


def _children(pid: int) -> dict[str, int]:
    """The dev server's children by what they run: web (gunicorn), worker, redis."""
    found = {}
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        argv = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        name = "web" if b"gunicorn" in argv else "worker" if b"worker.py" in argv else "redis"
        found[name] = int(child)
    return found


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"


@pytest.mark.slow
def test_ctrl_c_stops_a_dev_server_that_a_script_started_in_the_background(
    devservers, devserver_env, tmp_path
):
    """A shell script's `make run &` starts it with SIGINT ignored (POSIX, for background jobs);
    a SIGINT to its group still stops it, as Ctrl-C does in a terminal."""
    ignoring_sigint = [
        sys.executable,
        "-c",
        "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
        "os.execv(sys.executable, [sys.executable, '-m', 'app.devserver'])",
    ]
    server = _start(devservers, ignoring_sigint, devserver_env, tmp_path / "devserver.log")
    server.announcement()

    returncode, said = server.ctrl_c(timeout=60)

    assert returncode == 0, said
    assert "Stopped." in said and "Traceback" not in said


@pytest.mark.slow
def test_a_child_that_dies_is_named_and_the_rest_are_stopped(devservers, devserver_env, tmp_path):
    server = _start(devservers, DEVSERVER, devserver_env, tmp_path / "devserver.log")
    server.announcement()
    children = _children(server.group.pid)

    os.kill(children["web"], signal.SIGKILL)

    assert server.group.process.wait(timeout=90) == 1
    assert "The web process exited (code -9); stopping the rest." in server.group.output()
    assert "Traceback" not in server.group.output()
    assert _gone(children["worker"]) and _gone(children["redis"])


@pytest.mark.slow
def test_killing_the_dev_server_outright_stops_its_worker(devservers, devserver_env, tmp_path):
    server = _start(devservers, DEVSERVER, devserver_env, tmp_path / "devserver.log")
    server.announcement()
    children = _children(server.group.pid)

    os.kill(server.group.pid, signal.SIGKILL)  # no chance to stop anything in order

    try:
        wait_until(lambda: _gone(children["worker"]), timeout=60, message="the worker to stop")
    finally:  # web and Redis run in sessions of their own: nothing else would stop them
        for name in ("web", "redis"):
            os.kill(children[name], signal.SIGTERM)


@pytest.mark.slow
def test_ctrl_c_of_python_worker_py_mid_build_is_quiet_and_loses_nothing(app, client, auth, workers):
    path_id = create_path(client, auth, concepts=3)
    worker = workers(GENERATOR_LATENCY_MS="1500")
    build_id = start_build(client, auth, path_id)
    wait_until(lambda: build_of(client, auth, build_id)["completedSubConcepts"] > 0, timeout=90)
    before = len(worker.output())

    worker.signal_group(signal.SIGINT)  # the terminal's Ctrl-C: the supervisor and every slot

    assert worker.process.wait(timeout=60) == 0
    said = worker.output()[before:]
    assert "Traceback" not in said and " ERROR " not in said and "Cold shut down" not in said
    assert build_of(client, auth, build_id)["status"] == "processing"
    workers()
    build = wait_for_build(client, auth, build_id, timeout=120)
    concepts = client.get(f"/api/learning-paths/{path_id}", headers=auth).get_json()["concepts"]
    subs = [sub for concept in concepts for sub in concept["subConcepts"]]
    assert build["totalSubConcepts"] == build["completedSubConcepts"] == len(subs) > 0
    assert (
        build["totalKnowledgeUnits"]
        == build["completedKnowledgeUnits"]
        == sum(len(sub["knowledgeUnits"]) for sub in subs)
    )
