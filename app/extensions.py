"""Flask extensions, created unbound and attached in create_app."""

from __future__ import annotations

from typing import TYPE_CHECKING

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
# The base class of our models. Flask-SQLAlchemy builds db.Model from Base at run time, which a type
# checker cannot follow (db.Model is an attribute, not a class it can see): it checks against Base.
if TYPE_CHECKING:
    Model = Base
else:
    Model = db.Model
migrate = Migrate(render_as_batch=True)
login_manager = LoginManager()
csrf = CSRFProtect()
htmx = Htmx()
# Storage (the shared Redis) is set from REDIS_URL in create_app; limits are declared where they apply.
limiter = Limiter(key_func=get_remote_address, strategy="moving-window")
