"""Curriculum Builder: long AI content pipelines run as reliable background jobs."""

from __future__ import annotations

from typing import Any

from flask import Flask

from app.config import INSTANCE_DIR, PROJECT_ROOT, load_settings
from app.extensions import csrf, db, htmx, login_manager, migrate


def create_app(overrides: dict[str, Any] | None = None) -> Flask:
    """Build the app; `overrides` replaces settings (tests point it at their own services)."""
    app = Flask(
        __name__,
        instance_path=str(INSTANCE_DIR),
        template_folder="../templates",
        static_folder="../static",
    )
    app.config.update(load_settings())
    app.config.update(overrides or {})
    INSTANCE_DIR.mkdir(exist_ok=True)
    _configure_logging(app)
    register_extensions(app)
    register_blueprints(app)
    register_commands(app)
    return app


def _configure_logging(app: Flask) -> None:
    from app.logs import configure_logging

    configure_logging(app.config["LOG_LEVEL"], app.config["LOG_FORMAT"])


def register_extensions(app: Flask) -> None:
    from app import database
    from app.jobs.queues import connect_redis
    from app.pipelines.build_doorbell import BuildDoorbell

    database.configure_engine_options(app)
    db.init_app(app)
    migrate.init_app(app, db, directory=str(PROJECT_ROOT / "migrations"))
    app.extensions["redis"] = connect_redis(app.config["REDIS_URL"])
    app.extensions["build_doorbell"] = BuildDoorbell(app.extensions["redis"])
    csrf.init_app(app)
    htmx.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "auth.sign_in"
    login_manager.login_message = "Please sign in to see that page."


def register_blueprints(app: Flask) -> None:
    from app.admin import bp as admin_bp
    from app.admin.rq import mount_rq_dashboard
    from app.api import bp as api_bp
    from app.auth import bp as auth_bp
    from app.errors import register_error_handlers
    from app.ops import bp as ops_bp
    from app.web import bp as web_bp

    csrf.exempt(api_bp)  # bearer tokens, not cookies: there is no session to forge
    app.register_blueprint(api_bp)
    app.register_blueprint(auth_bp)
    app.register_blueprint(web_bp)
    app.register_blueprint(admin_bp)
    app.register_blueprint(ops_bp)
    mount_rq_dashboard(app)
    register_error_handlers(app)


def register_commands(app: Flask) -> None:
    from app.cli import generator_cli, jobs_cli, users_cli

    app.cli.add_command(users_cli)
    app.cli.add_command(generator_cli)
    app.cli.add_command(jobs_cli)
