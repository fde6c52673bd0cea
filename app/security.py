"""Security headers on every response: a strict Content-Security-Policy (scripts from this site
only), no framing, no MIME sniffing, no Referer to other sites, and `Vary: HX-Request` on HTML
(a page and its HTMX fragment share a URL, so a cache must keep them apart).

rq-dashboard is the one exception, narrowly: each of its pages carries one inline script
(templated with its URLs) and compiles underscore templates with `new Function`, and its markup
uses style attributes. Its pages get the hash of exactly the inline script served, plus
'unsafe-eval' and inline styles; nothing else is loosened, and only under /admin/rq.
"""

from __future__ import annotations

import base64
import hashlib
import re

from flask import Flask, Response, request

APP_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "style-src-attr 'unsafe-inline'",  # progress bars set their width; no script can ride on it
        "img-src 'self' data:",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
RQ_DASHBOARD_BLUEPRINT = "rq_dashboard"
_INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", re.DOTALL | re.IGNORECASE)

HEADERS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def rq_dashboard_policy(html: str) -> str:
    """The policy for one rq-dashboard page: its own inline scripts, by hash, and nothing more."""
    hashes = " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()}'"
        for script in _INLINE_SCRIPT.findall(html)
    )
    return "; ".join(
        [
            "default-src 'self'",
            f"script-src 'self' 'unsafe-eval' {hashes}".rstrip(),
            "style-src 'self' 'unsafe-inline'",
            "img-src 'self' data:",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


def add_security_headers(response: Response) -> Response:
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    is_html = response.mimetype == "text/html"
    if is_html and request.blueprint == RQ_DASHBOARD_BLUEPRINT and not response.is_streamed:
        response.headers["Content-Security-Policy"] = rq_dashboard_policy(response.get_data(as_text=True))
    response.headers.setdefault("Content-Security-Policy", APP_POLICY)
    if is_html:
        response.vary.add("HX-Request")
    return response


def register_security_headers(app: Flask) -> None:
    app.after_request(add_security_headers)
