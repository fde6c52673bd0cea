"""rq-dashboard inside the app at /admin/rq, for admins only, on the app's own Redis.

Two fixes to rq-dashboard 0.9 when embedded: its `before_request` swaps a process-wide Redis
connection on every request (we connect once, at start, and drop that hook), and its job
JSON decodes dependency ids that rq 2.x already returns as str (a 500 for any job with
dependencies; the view below is the same without that bug). Its forms post without CSRF
tokens, so instead of a token its POSTs must come from this site (Origin or Referer). Its
pages get a link back to the app, added to its HTML as it leaves (none of its files is copied).
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import rq_dashboard
from flask import Flask, Response, abort, current_app, redirect, request, url_for
from flask_login import current_user
from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq_dashboard import web as rq_web

from app.errors import QUEUE_DOWN, error_page
from app.extensions import csrf
from app.jobs.queues import connect_redis

URL_PREFIX = "/admin/rq"


def mount_rq_dashboard(app: Flask) -> None:
    app.config.setdefault("RQ_DASHBOARD_REDIS_URL", app.config["REDIS_URL"])
    app.config["RQ_DASHBOARD_REDIS_URL"] = (app.config["RQ_DASHBOARD_REDIS_URL"],)
    app.redis_conn = connect_redis(app.config["REDIS_URL"])  # type: ignore[attr-defined]
    csrf.exempt(rq_dashboard.blueprint)
    app.register_blueprint(rq_dashboard.blueprint, url_prefix=URL_PREFIX)
    hooks = app.before_request_funcs.get("rq_dashboard", [])
    app.before_request_funcs["rq_dashboard"] = [h for h in hooks if h is not rq_web.push_rq_connection]
    app.before_request_funcs["rq_dashboard"].insert(0, _admins_only)
    app.view_functions["rq_dashboard.job_info"] = _job_info
    app.after_request_funcs.setdefault("rq_dashboard", []).extend([_link_back_to_the_app, _outage_page])


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
    and our favicon in its head (it has none: browsers asked for /favicon.ico, a 404)."""
    if response.mimetype != "text/html" or response.direct_passthrough or response.status_code != 200:
        return response
    bar = (
        '<nav id="app-link" style="padding:.4rem 1rem;background:#fff;border-bottom:1px solid #e1e5ee">'
        f'<a href="{url_for("web.home")}">← Curriculum Builder</a> · '
        f'<a href="{url_for("admin.queue")}">Job queue</a></nav>'
    )
    icon = f'<link rel="icon" type="image/svg+xml" href="{url_for("static", filename="favicon.svg")}">'
    html = response.get_data(as_text=True).replace("</head>", f"{icon}</head>", 1)
    response.set_data(html.replace("<body>", f"<body>{bar}", 1))
    return response


def _admins_only():  # type: ignore[no-untyped-def]
    if not current_user.is_authenticated:
        return redirect(url_for("auth.sign_in", next=request.full_path))
    if not current_user.is_admin:
        abort(403)
    if request.method == "POST" and not _same_origin():
        abort(403, "Cross-site request refused.")
    return None


def _same_origin() -> bool:
    source = request.headers.get("Origin") or request.headers.get("Referer")
    if not source:
        return False
    return urlsplit(source).netloc == request.host


@rq_web.jsonify
def _job_info(instance_number: int, job_id: str):  # type: ignore[no-untyped-def]
    job = Job.fetch(job_id, serializer=rq_web.config.serializer, connection=current_app.redis_conn)
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
        Job.fetch(job_id, serializer=rq_web.config.serializer, connection=current_app.redis_conn)
    except NoSuchJobError:
        return "expired"
    return "active"
