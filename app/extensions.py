"""Flask extensions, created unbound and attached in create_app."""

from __future__ import annotations

from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from htmx_flask import Htmx
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)
migrate = Migrate(render_as_batch=True)
login_manager = LoginManager()
csrf = CSRFProtect()
htmx = Htmx()
# Storage (the shared Redis) is set from REDIS_URL in create_app; limits are declared where they apply.
limiter = Limiter(key_func=get_remote_address, strategy="moving-window")
