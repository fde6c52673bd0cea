"""rq-dashboard inside the app at /admin/rq, for admins only, on the app's own Redis.

Fixes to rq-dashboard 0.9 when embedded: its `before_request` swaps a process-wide Redis
connection on every request (we connect once, at start, and drop that hook); its job JSON
decodes dependency ids that rq 2.x already returns as str (a 500 for any job with
dependencies; the view below is the same without that bug); an unknown job, queue or page
size was a 500 (now 404 or 400). Its forms post without CSRF tokens, so instead of a token
every state-changing route takes only POST, from this very origin (scheme included). Its
pages get a link back to the app and a stylesheet of ours for phones, added to its HTML as it
leaves (none of its files is copied).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import urlsplit

import rq_dashboard
from flask import Flask, Response, abort, current_app, redirect, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from redis import Redis
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job
from rq.queue import Queue
from rq_dashboard import web as rq_web
from werkzeug.exceptions import MethodNotAllowed

from app.auth import sign_in_url
from app.errors import QUEUE_DOWN, error_page
from app.extensions import csrf
from app.jobs.queues import connect_redis, redis_location

URL_PREFIX = "/admin/rq"
# The dashboard's routes that change Redis: POST only, same origin only.
STATE_CHANGING = frozenset(
    f"rq_dashboard.{name}"
    for name in ("delete_job_view", "requeue_job_view", "requeue_all", "empty_queue", "compact_queue")
)
REGISTRIES = ("queued", "failed", "deferred", "started", "finished", "scheduled", "canceled")
ORDERS = ("asc", "dsc")
MAX_PER_PAGE = 100
MAX_PAGE = 100_000

View = Callable[..., Any]


def mount_rq_dashboard(app: Flask) -> None:
    # Shown on its pages only: the connection is ours, from connect_redis (Sentinel or URL).
    app.config["RQ_DASHBOARD_REDIS_URL"] = (redis_location(app.config),)
    app.redis_conn = connect_redis(app.config)  # type: ignore[attr-defined]
    csrf.exempt(rq_dashboard.blueprint)
    app.register_blueprint(rq_dashboard.blueprint, url_prefix=URL_PREFIX)
    hooks = app.before_request_funcs.get("rq_dashboard", [])
    app.before_request_funcs["rq_dashboard"] = [h for h in hooks if h is not rq_web.push_rq_connection]
    app.before_request_funcs["rq_dashboard"].insert(0, _admins_only)
    views = app.view_functions
    views["rq_dashboard.job_info"] = _not_found_when_missing(_job_info)
    for name in ("job_view", "requeue_job_view"):
        views[f"rq_dashboard.{name}"] = _not_found_when_missing(views[f"rq_dashboard.{name}"])
    views["rq_dashboard.list_jobs"] = _valid_listing(views["rq_dashboard.list_jobs"])
    views["rq_dashboard.jobs_overview"] = _valid_listing(views["rq_dashboard.jobs_overview"])
    views["rq_dashboard.compact_queue"] = _known_queue(views["rq_dashboard.compact_queue"])
    app.after_request_funcs.setdefault("rq_dashboard", []).extend([_link_back_to_the_app, _outage_page])


def _dashboard_redis() -> Redis:
    """The client rq-dashboard keeps on the app (set above), which Flask's type does not declare."""
    return current_app.redis_conn  # type: ignore[attr-defined,no-any-return]


def _outage_page(response: Response) -> Response:
    """rq-dashboard answers a Redis outage with a bare "Connection Error" heading and a 200: show
    our 503 page instead (Flask runs after_request hooks last-registered first)."""
    if response.mimetype != "text/html" or response.direct_passthrough:
        return response
    if response.get_data(as_text=True).startswith("<h1>Connection Error"):
        body, status = error_page(503, QUEUE_DOWN)
        return Response(body, status=status, mimetype="text/html")
    return response


def _link_back_to_the_app(response: Response) -> Response:
    """Put a bar with links to the app's home and job queue at the top of each dashboard page,
    and in its head our favicon (it has none: browsers asked for /favicon.ico, a 404) and our
    stylesheet that stacks its tables on a phone (they scrolled sideways at 390 px)."""
    if response.mimetype != "text/html" or response.direct_passthrough or response.status_code != 200:
        return response
    bar = (
        '<nav id="app-link" style="padding:.4rem 1rem;background:#fff;border-bottom:1px solid #e1e5ee">'
        f'<a href="{url_for("web.home")}">← Curriculum Builder</a> · '
        f'<a href="{url_for("admin.queue")}">Job queue</a></nav>'
    )
    icon = f'<link rel="icon" type="image/svg+xml" href="{url_for("static", filename="favicon.svg")}">'
    phone = f'<link rel="stylesheet" href="{url_for("static", filename="rq-dashboard.css")}">'
    html = response.get_data(as_text=True).replace("</head>", f"{icon}{phone}</head>", 1)
    response.set_data(html.replace("<body>", f"<body>{bar}", 1))
    return response


def _admins_only() -> ResponseReturnValue | None:
    if not current_user.is_authenticated:
        return redirect(sign_in_url(request.full_path.rstrip("?")))
    if not current_user.is_admin:
        abort(403)
    if request.endpoint in STATE_CHANGING:
        if request.method != "POST":  # rq-dashboard's requeue_all takes GET too: a link could fire it
            raise MethodNotAllowed(valid_methods=["POST"])
        if not _same_origin():
            abort(403, "Cross-site request refused.")
    return None


def _same_origin() -> bool:
    """The Origin (or else the Referer) names this site with this scheme: https://host is not
    http://host. Behind a TLS proxy, gunicorn takes the scheme from X-Forwarded-Proto."""
    source = request.headers.get("Origin") or request.headers.get("Referer")
    if not source:
        return False
    parts = urlsplit(source)
    return (parts.scheme, parts.netloc) == (request.scheme, request.host)


# What RQ takes as a job id: ASCII letters, digits, underscores and dashes ('²' is a digit to
# Python, not to RQ).
JOB_ID = re.compile(r"[A-Za-z0-9_-]+")


def _not_found_when_missing(view: View) -> View:
    """An unknown (or expired) job id is a 404, and an impossible operation on a job a 409."""

    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if "job_id" in kwargs and not JOB_ID.fullmatch(kwargs["job_id"]):  # RQ raises ValueError on it
            abort(404, f"No job {kwargs['job_id']!r}.")
        try:
            return view(*args, **kwargs)
        except NoSuchJobError:
            abort(404, f"No job {kwargs.get('job_id')!r}.")
        except InvalidJobOperation as exc:
            abort(409, str(exc))

    return wrapped


def _valid_listing(view: View) -> View:
    """A job listing's registry, order, page size and page, checked before rq-dashboard divides
    by the page size or picks a registry by name."""

    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if kwargs["registry_name"] not in REGISTRIES:
            abort(404, f"No registry {kwargs['registry_name']!r}: one of {', '.join(REGISTRIES)}.")
        if kwargs["order"] not in ORDERS:
            abort(400, "order: must be asc or dsc.")
        kwargs["per_page"] = _bounded_int("per_page", kwargs["per_page"], MAX_PER_PAGE)
        kwargs["page"] = _bounded_int("page", kwargs["page"], MAX_PAGE)
        return view(*args, **kwargs)

    return wrapped


def _bounded_int(name: str, raw: int | str, high: int) -> int:
    text = str(raw)
    # Length first: int() refuses more than 4,300 digits with a ValueError (a 500).
    if not (len(text) <= len(str(high)) and text.isascii() and text.isdigit()) or not 1 <= int(text) <= high:
        abort(400, f"{name}: must be a whole number from 1 to {high}.")
    return int(text)


def _known_queue(view: View) -> View:
    """Compacting a queue Redis has never heard of is a 404, not a 'Redis unavailable'."""

    @wraps(view)
    def wrapped(queue_name: str) -> Any:
        queue = Queue(queue_name, connection=_dashboard_redis())
        if not _dashboard_redis().sismember(Queue.redis_queues_keys, queue.key):
            abort(404, f"No queue {queue_name!r}.")
        return view(queue_name)

    return wrapped


@rq_web.jsonify
def _job_info(instance_number: int, job_id: str) -> dict[str, Any]:
    job = Job.fetch(job_id, serializer=rq_web.config.serializer, connection=_dashboard_redis())
    latest = job.latest_result()
    encoder = current_app.config.get("RQ_DASHBOARD_JSON_ENCODER", json.JSONEncoder)
    result = {
        "id": job.id,
        "created_at": rq_web.serialize_date(job.created_at),
        "enqueued_at": rq_web.serialize_date(job.enqueued_at),
        "started_at": rq_web.serialize_date(job.started_at),
        "ended_at": rq_web.serialize_date(job.ended_at),
        "origin": job.origin,
        "status": job.get_status(),
        "result": job.return_value(),
        "exc_info": latest.exc_string if latest else None,
        "description": rq_web.format_job_description(job),
        "metadata": json.dumps(job.get_meta(), cls=encoder),
    }
    dependency_ids = [d.decode() if isinstance(d, bytes) else d for d in job.dependency_ids]
    if dependency_ids:
        result["depends_on"] = dependency_ids
        result["depends_on_status"] = [_exists(dep) for dep in dependency_ids]
    return result


def _exists(job_id: str) -> str:
    try:
        Job.fetch(job_id, serializer=rq_web.config.serializer, connection=_dashboard_redis())
    except NoSuchJobError:
        return "expired"
    return "active"
