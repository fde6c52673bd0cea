"""Apps built for one test beside the `app` fixture."""

from __future__ import annotations

from flask import Flask

from app import create_app


def boom_app(**overrides: object) -> Flask:
    """The real app, with exceptions handled as in production and one route that fails."""
    app = create_app({"PROPAGATE_EXCEPTIONS": False, **overrides})

    def boom() -> str:
        raise RuntimeError("a bug")

    app.add_url_rule("/boom", view_func=boom)
    return app
