"""Many build pages open at once on builds in progress, against the Procfile's `web` command:
the page's model (bench/page_model.py: hundreds of pages from one asyncio loop) beside a few real
Chromium pages on the same builds, whose requests per event show whether the model is faithful;
probes of `/healthz`, the API and a page's poll with no page open and then with every page open;
the web tier's memory (PSS) and CPU, and the CPU of everything else on the machine's 2 cores.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import requests
from playwright.sync_api import Browser, Page, sync_playwright
from sqlalchemy import select

from app.extensions import db
from app.models import Build, User
from bench.harness import Deployment, _children, cpu_seconds, deployment, percentile, pss_kb, start_path_build
from bench.page_model import TRIGGERS, Counts, ModelPage
from bench.sse import Load, _probe, _procfile_web, _start_web, probe_figures
from tests.helpers.browser import CHROMIUM, CHROMIUM_ARGS

PASSWORD = "bench"
OPENING_TIMEOUT_S = 180.0


# --- the real browser ---------------------------------------------------------------------

COUNT_EVENTS = """(() => {
  const Native = window.EventSource
  const seen = (window.__sse = { events: 0, opens: 0 })
  window.EventSource = class extends Native {
    constructor(url, init) {
      super(url, init)
      for (const type of %s) {
        this.addEventListener(type, (e) => { if (e instanceof MessageEvent) seen.events++ })
      }
      this.addEventListener('open', () => seen.opens++)
    }
  }
})()"""


@dataclass
class BrowserPage:
    page: Page
    path_url: str
    requests: list[tuple[str, bool]] = field(default_factory=list)  # (path, HX-Request)
    opened_at: float = 0.0

    def counts(self) -> Counts:
        seen = self.page.evaluate("window.__sse")
        paths = [(url.split("?")[0], hx) for url, hx in self.requests if "/stream" not in url]
        return Counts(
            pages=1,
            seconds_open=time.monotonic() - self.opened_at,
            events=seen["events"],
            panel_requests=sum(hx and url.endswith(self.path_url) for url, hx in paths),
            tree_requests=sum(url.endswith(f"{self.path_url}/tree") for url, _ in paths),
            stream_opens=seen["opens"],
        )


def _open_browser_page(browser: Browser, base: str, email: str, path_id: str) -> BrowserPage:
    """A context of its own (a browser's 6 connections a host are per profile), signed in
    through the form, on the build page, once its stream is open."""
    page = browser.new_context().new_page()
    page.add_init_script(COUNT_EVENTS % repr(list(TRIGGERS)))
    page.goto(f"{base}/sign-in")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.click("button:has-text('Sign in')")
    page.wait_for_url(f"{base}/")
    opened = BrowserPage(page, f"/paths/{path_id}")
    page.on("request", lambda r: opened.requests.append((r.url, "hx-request" in r.headers)))
    opened.opened_at = time.monotonic()
    page.goto(f"{base}/paths/{path_id}")
    page.wait_for_selector("#build-push.push-live", state="attached", timeout=60_000)
    return opened


# --- the run --------------------------------------------------------------------------------


def _users(run: Deployment, count: int) -> list[tuple[str, str]]:
    """(email, API token) of `count` users who can sign in."""
    users = []
    with run.app.app_context():
        for n in range(count):
            user = User(email=f"watcher{n}@example.com")
            user.set_password(PASSWORD)
            users.append((user.email, user.issue_token()))
            db.session.add(user)
        db.session.commit()
    return users


def _builds(run: Deployment, users: list[tuple[str, str]]) -> list[str]:
    """One 30-concept build a user; the path ids, in the users' order."""
    paths = []
    for n, (_, token) in enumerate(users):
        build_id = start_path_build(replace(run, token=token, groups=[]), 30, name=f"Watched {n}")
        with run.app.app_context():
            paths.append(db.session.get_one(Build, build_id).path_id)
    return paths


def _cookie(port: int, email: str) -> str:
    """Sign in through the form (its CSRF token included), as a browser: the session cookie."""
    session = requests.Session()
    page = session.get(f"http://127.0.0.1:{port}/sign-in", timeout=30).text
    token = page.split('name="csrf_token" type="hidden" value="')[1].split('"')[0]
    answer = session.post(
        f"http://127.0.0.1:{port}/sign-in",
        data={"email": email, "password": PASSWORD, "csrf_token": token},
        timeout=30,
    )
    if not answer.url.endswith("/"):
        raise RuntimeError(f"{email} was not signed in: {answer.status_code} {answer.url}")
    return "; ".join(f"{name}={value}" for name, value in session.cookies.items())


@dataclass
class ModelRun:
    """The modelled pages and the probes, driven on their own thread's event loop."""

    port: int
    pages: list[tuple[ModelPage, int]]  # (page, index of its build)
    probes: dict[str, tuple[str, dict[str, str]]]
    baseline_s: float
    hold_s: float
    idle: Load = field(default_factory=Load)  # the probes before any page is open
    load: Load = field(default_factory=Load)  # the probes with every page open
    at_hold: list[Counts] = field(default_factory=list)  # each page's counts when the hold began
    at_end: list[Counts] = field(default_factory=list)
    web_pss_kb: int = 0
    web_cpu_idle_s: float = 0.0  # over the probes with no page open
    opening_s: float = 0.0  # from the first page's load to every stream open
    open_at_hold: int = 0  # pages with their stream open
    open_at_end: int = 0
    holding: threading.Event = field(default_factory=threading.Event)  # the pages are open
    done: threading.Event = field(default_factory=threading.Event)


async def _probing(model: ModelRun, load: Load, seconds: float) -> None:
    tasks = [
        asyncio.create_task(_probe(model.port, name, *args, load)) for name, args in model.probes.items()
    ]
    await asyncio.sleep(seconds)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def _drive(model: ModelRun, web_pid: int) -> None:
    """Probe with no page open; open the pages (10 a second) and wait until each has its stream
    open; probe for the hold, counting what the pages do over it, and the web tree's memory at
    its end."""
    cpu_before = cpu_seconds(web_pid)
    await _probing(model, model.idle, model.baseline_s)
    model.web_cpu_idle_s = cpu_seconds(web_pid) - cpu_before
    tasks, started = [], time.monotonic()
    for n, (page, _) in enumerate(model.pages):
        tasks.append(asyncio.create_task(page.run()))
        if n % 5 == 4:
            await asyncio.sleep(0.5)
    while time.monotonic() - started < OPENING_TIMEOUT_S and not all(p.stream_open for p, _ in model.pages):
        await asyncio.sleep(0.2)
    model.opening_s = time.monotonic() - started
    model.open_at_hold = sum(page.stream_open for page, _ in model.pages)
    model.at_hold = [page.snapshot() for page, _ in model.pages]
    model.holding.set()
    await _probing(model, model.load, model.hold_s)
    model.at_end = [page.snapshot() for page, _ in model.pages]
    model.open_at_end = sum(page.stream_open for page, _ in model.pages)
    model.web_pss_kb = pss_kb(web_pid)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def _run_model(model: ModelRun, web_pid: int) -> None:
    try:
        asyncio.run(_drive(model, web_pid))
    finally:
        model.holding.set()
        model.done.set()


def _model_counts(model: ModelRun, builds: set[int] | None = None) -> Counts:
    """What the pages (of `builds`, or all) did over the hold."""
    total = Counts()
    for (_, build), start, end in zip(model.pages, model.at_hold, model.at_end, strict=True):
        if builds is None or build in builds:
            total.add(end.since(start))
    return total


def _watch(real: list[BrowserPage], model: ModelRun, pids: dict[str, int]) -> tuple[Counts, dict[str, float]]:
    """What the Chromium pages did over the same hold (Playwright delivers their requests while
    this thread waits on it), and the CPU each part of the run used over it."""
    while not model.holding.wait(0.05):
        real[0].page.wait_for_timeout(200)
    at_hold, cpu_at_hold = [opened.counts() for opened in real], _cpu_by_part(pids)
    while not model.done.wait(0.05):
        real[0].page.wait_for_timeout(200)
    cpu = {part: round(used - cpu_at_hold[part], 1) for part, used in _cpu_by_part(pids).items()}
    total = Counts()
    for opened, start in zip(real, at_hold, strict=True):
        total.add(opened.counts().since(start))
    return total, cpu


def _cpu_by_part(pids: dict[str, int]) -> dict[str, float]:
    """CPU seconds used so far by the web tree, the worker tree, Chromium with Playwright's driver
    (whose counts die with a process that ends), and this process: the modelled pages, the
    probes and Playwright's client. The rest of the machine's load is other people's."""
    browser = [pid for pid in _children(os.getpid()) if _is_browser(pid)]
    return {
        "web": cpu_seconds(pids["web"]),
        "worker": cpu_seconds(pids["worker"]),
        "chromium": sum(_own_cpu(pid) for pid in browser),
        "bench_client": time.process_time(),
    }


def _is_browser(pid: int) -> bool:
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"chrom" in command or b"playwright" in command


def _own_cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def push_pages_many(quick: bool) -> dict[str, Any]:
    """Pages (modelled) on builds in progress, K real Chromium pages beside them, probes."""
    users, per_build, browsers, baseline_s, hold_s = (4, 5, 2, 3, 10) if quick else (40, 5, 10, 20, 60)
    # Quick: short stream lifetimes, so the reconnects (and their panel requests) are compared too.
    lifetime_s = 10 if quick else 300
    settings = {"GENERATOR_LATENCY_MS": 1000, "POLL_INTERVAL_S": 3, "SSE_MAX_STREAM_S": lifetime_s}
    with deployment(**settings) as run:
        accounts = _users(run, users)
        paths = _builds(run, accounts)
        group, port = _start_web(run, _procfile_web(), "procfile")
        web_nice = _prioritise(group.pid)
        cookies = [_cookie(port, email) for email, _ in accounts]
        worker = run.worker()
        idle_mb = round(pss_kb(group.pid) / 1024, 1)
        load_before = os.getloadavg()[0]
        model = ModelRun(
            port,
            [
                (ModelPage(port, paths[n % users], cookies[n % users]), n % users)
                for n in range(users * per_build)
            ],
            {
                "healthz": ("/healthz", {}),
                "api_job": (f"/api/jobs/{_build_of(run, paths[0])}", run.auth),
                "htmx_poll": (f"/paths/{paths[0]}", {"Cookie": cookies[0], "HX-Request": "true"}),
            },
            baseline_s,
            hold_s,
        )
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            base = f"http://127.0.0.1:{port}"
            # The builds started last: with many builds at once the worker moves those first.
            watched = range(users - browsers, users)
            real = [_open_browser_page(browser, base, accounts[n][0], paths[n]) for n in watched]
            thread = threading.Thread(target=_run_model, args=(model, group.pid), daemon=True)
            thread.start()
            browser_counts, cpu = _watch(real, model, {"web": group.pid, "worker": worker.pid})
            browser.close()
        thread.join()
        load_after = os.getloadavg()[0]
    if not all(page.stream_url and page.panel_url for page, _ in model.pages):
        raise RuntimeError(
            "a modelled page found no stream or panel in the page: bench/page_model.py no longer "
            "matches templates/web/"
        )
    return _results(model, browser_counts, watched, idle_mb) | {
        "cpu_s_over_hold": cpu,
        "web_cpu_share_of_a_core": {
            "no_page_open": round(model.web_cpu_idle_s / baseline_s, 2),
            "pages_open": round(cpu["web"] / hold_s, 2),
        },
        "users": users,
        "builds": users,
        "pages_per_build": per_build,
        "generator_latency_ms": settings["GENERATOR_LATENCY_MS"],
        "stream_lifetime_s": lifetime_s,
        "baseline_s": baseline_s,
        "hold_s": hold_s,
        "machine_load_1min": {"before": load_before, "after": load_after},
        "web_nice": web_nice,
        "target": {"healthz_p99_ms": 200},
    }


def _prioritise(web_pid: int) -> int:
    """BENCH_WEB_NICE (e.g. -10, as root): the web tree's scheduling priority, to see what it does
    when it gets the CPU it asks for on a machine that others' work keeps busy. 0: as it comes."""
    nice = int(os.environ.get("BENCH_WEB_NICE", "0"))
    if nice:
        for pid in [web_pid, *_children(web_pid)]:
            os.setpriority(os.PRIO_PROCESS, pid, nice)
    return nice


def _build_of(run: Deployment, path_id: str) -> str:
    with run.app.app_context():
        return str(db.session.scalar(select(Build.id).where(Build.path_id == path_id)))


def _results(model: ModelRun, browser: Counts, browser_builds: range, idle_mb: float) -> dict[str, Any]:
    every = _model_counts(model)
    answers: Counter[int] = Counter()
    for page, _ in model.pages:
        answers.update(page.stream_answers)
    fragment_ms = every.fragment_ms
    return {
        "seconds_to_open_every_page": round(model.opening_s, 1),
        "pages_with_stream_open": {"hold_start": model.open_at_hold, "hold_end": model.open_at_end},
        "model_pages_over_the_hold": every.figures()
        | {
            "stream_answers_all_run": dict(sorted(answers.items())),
            "errors": every.errors,
            "panel_answer_ms": {
                "p50": round(percentile(fragment_ms, 0.5), 1),
                "p99": round(percentile(fragment_ms, 0.99), 1),
                "max": round(max(fragment_ms), 1) if fragment_ms else None,
            },
        },
        # Requests per event of the model beside Chromium's, on the same builds over the same hold.
        "faithful": {
            "builds": len(browser_builds),
            "chromium_pages": browser.figures(),
            "model_pages_on_the_same_builds": _model_counts(model, set(browser_builds)).figures(),
        },
        "probes_no_page_open": probe_figures(model.idle),
        "probes_pages_open": probe_figures(model.load),
        "web_pss_mb": {"idle": idle_mb, "pages_open": round(model.web_pss_kb / 1024, 1)},
    }
