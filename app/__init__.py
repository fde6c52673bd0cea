"""Curriculum Builder: long AI content pipelines run as reliable background jobs."""

from __future__ import annotations

from typing import Any

from flask import Flask

from app import database
from app.admin import bp as admin_bp
from app.admin.rq import mount_rq_dashboard
from app.api import bp as api_bp
from app.auth import bp as auth_bp
from app.cli import generator_cli, jobs_cli, users_cli
from app.config import INSTANCE_DIR, PROJECT_ROOT, check_secret_key, load_settings
from app.errors import register_error_handlers
from app.extensions import csrf, db, htmx, login_manager, migrate
from app.inputs import register_input_guards
from app.jobs.queues import connect_redis
from app.logs import configure_logging
from app.monitoring import bp as monitoring_bp
from app.pipelines.doorbell import BuildDoorbell
from app.pipelines.recovery_hooks import register_pipeline_recovery
from app.security import register_security_headers
from app.throttle import init_throttle
from app.web import bp as web_bp
from app.web.filters import register_filters


def create_app(overrides: dict[str, Any] | None = None) -> Flask:
    """Build the app; `overrides` replaces settings (tests point it at their own services)."""
    app = Flask(
        __name__,
        instance_path=str(INSTANCE_DIR),
        template_folder="../templates",
        static_folder="../static",
    )
    app.config.update(load_settings(overrides))  # overrides of a setting are checked like the environment
    check_secret_key(app.config)
    INSTANCE_DIR.mkdir(exist_ok=True)
    _configure_logging(app)
    register_input_guards(app)  # before any route is added: it replaces the `int` converter
    register_extensions(app)
    register_blueprints(app)
    register_template_filters(app)
    register_security_headers(app)
    register_commands(app)
    register_pipeline_recovery(app)
    return app


def _configure_logging(app: Flask) -> None:
    configure_logging(app.config["LOG_LEVEL"], app.config["LOG_FORMAT"])


def register_extensions(app: Flask) -> None:
    database.configure_engine_options(app)
    db.init_app(app)
    migrate.init_app(app, db, directory=str(PROJECT_ROOT / "migrations"))
    app.extensions["redis"] = connect_redis(app.config)
    app.extensions["build_doorbell"] = BuildDoorbell(app.extensions["redis"])
    csrf.init_app(app)
    htmx.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "auth.sign_in"
    login_manager.login_message = "Please sign in to see that page."
    init_throttle(app)


def register_blueprints(app: Flask) -> None:
    csrf.exempt(api_bp)  # bearer tokens, not cookies: there is no session to forge
    app.register_blueprint(api_bp)
    app.register_blueprint(auth_bp)
    app.register_blueprint(web_bp)
    app.register_blueprint(admin_bp)
    app.register_blueprint(monitoring_bp)
    mount_rq_dashboard(app)
    register_error_handlers(app)


def register_template_filters(app: Flask) -> None:
    register_filters(app)


def register_commands(app: Flask) -> None:
    app.cli.add_command(users_cli)
    app.cli.add_command(generator_cli)
    app.cli.add_command(jobs_cli)
