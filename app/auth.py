"""Sign in and out of the pages (Flask-Login sessions backed by a row per session); the API uses
bearer tokens instead."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import cast
from urllib.parse import quote, urlencode, urlsplit

from flask import Blueprint, current_app, flash, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_limiter.errors import RateLimitExceeded
from flask_login import current_user, login_required, login_user, logout_user

from app.extensions import db, limiter, login_manager
from app.forms import ChangePasswordForm, SignInForm
from app.models import User
from app.models.users import authenticate, signed_in_user
from app.throttle import (
    is_failed_sign_in,
    posted_email,
    seconds_until_allowed,
    signed_in_account,
    signin_limit_per_account,
    signin_limit_per_address,
)

bp = Blueprint("auth", __name__)
SESSION_ID_KEY = "sid"
ROW_ID = re.compile(r"[0-9]{1,18}")  # ASCII digits that fit a 64-bit column


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    """The user only while their session row lives: sign-out deletes it, so a saved cookie fails."""
    session_id = session.get(SESSION_ID_KEY)
    if not isinstance(session_id, str) or not ROW_ID.fullmatch(user_id):
        return None
    return signed_in_user(int(user_id), session_id, _max_age())


def _max_age() -> timedelta:
    return timedelta(seconds=current_app.config["SESSION_MAX_AGE_S"])


def is_local_path(target: str | None) -> bool:
    """A path on this site and nothing a browser could read as another host: no scheme, no
    `//host`, and no backslash or control character (browsers turn `/\\host` into `//host`)."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return False
    if "\\" in target or any(ord(char) < 0x20 or ord(char) == 0x7F for char in target):
        return False
    return not urlsplit(target).scheme and not urlsplit(target).netloc


def sign_in_url(next_path: str) -> str:
    """The sign-in page that returns to `next_path`, the parameter percent-encoded whole."""
    return url_for("auth.sign_in") + "?" + urlencode({"next": next_path}, quote_via=quote, safe="")


def _safe_next(target: str | None) -> str:
    """Only a path on this site: never an open redirect."""
    return target if target is not None and is_local_path(target) else url_for("web.home")


def _start_session(user: User) -> None:
    user.end_expired_sessions(_max_age())
    session_id = user.start_session()
    db.session.commit()
    session.clear()
    login_user(user)
    session[SESSION_ID_KEY] = session_id
    session.permanent = True  # the cookie expires with SESSION_MAX_AGE_S too


@bp.route("/sign-in", methods=["GET", "POST"])
@limiter.limit(
    signin_limit_per_account, key_func=posted_email, methods=["POST"], deduct_when=is_failed_sign_in
)
@limiter.limit(signin_limit_per_address, methods=["POST"], deduct_when=is_failed_sign_in)
def sign_in() -> ResponseReturnValue:
    """Show the sign-in form; sign the person in."""
    form = SignInForm()
    if form.validate_on_submit():
        user = authenticate((form.email.data or "").strip().lower(), form.password.data or "")
        if user is not None:
            _start_session(user)
            return redirect(_safe_next(request.args.get("next")))
        cast(list[str], form.password.errors).append("That email and password do not match.")
    return render_template("auth/sign_in.html", form=form), 200 if request.method == "GET" else 422


@bp.errorhandler(RateLimitExceeded)
def too_many_failures(_exc: RateLimitExceeded) -> ResponseReturnValue:
    """Refuse, even the right password, until the window has room again."""
    retry_after = seconds_until_allowed()
    minutes = max(1, round(retry_after / 60))
    message = f"Too many failed sign-ins; try again in {minutes} minute{'s' if minutes > 1 else ''}."
    form: ChangePasswordForm | SignInForm
    if request.endpoint == "auth.change_password":
        form = ChangePasswordForm()
        form.current_password.errors = [message]
        page = render_template("auth/account.html", form=form)
    else:
        form = SignInForm()
        form.password.errors = [message]
        page = render_template("auth/sign_in.html", form=form)
    return page, 429, {"Retry-After": str(retry_after)}


@bp.post("/sign-out")
@login_required
def sign_out() -> ResponseReturnValue:
    """Sign out: this browser's session ends for good."""
    current_user.end_sessions(only=session[SESSION_ID_KEY])
    db.session.commit()
    logout_user()
    session.clear()
    flash("Signed out.")
    return redirect(url_for("auth.sign_in"))


@bp.post("/sign-out-everywhere")
@login_required
def sign_out_everywhere() -> ResponseReturnValue:
    """End every session of this user, this one included."""
    ended = current_user.end_sessions()
    db.session.commit()
    logout_user()
    session.clear()
    flash(f"Signed out everywhere ({ended} session{'s' if ended != 1 else ''}).")
    return redirect(url_for("auth.sign_in"))


@bp.get("/account")
@login_required
def account() -> ResponseReturnValue:
    """Show the password form and the sign-out-everywhere button."""
    return render_template("auth/account.html", form=ChangePasswordForm())


@bp.post("/account/password")
@login_required
@limiter.limit(signin_limit_per_account, key_func=signed_in_account, deduct_when=is_failed_sign_in)
def change_password() -> ResponseReturnValue:
    """Change the password; every other session of the user ends."""
    form = ChangePasswordForm()
    if form.validate_on_submit():
        if current_user.check_password(form.current_password.data):
            current_user.set_password(form.new_password.data)
            current_user.end_sessions(keep=session[SESSION_ID_KEY])
            db.session.commit()
            flash("Password changed; every other session has been signed out.")
            return redirect(url_for("auth.account"))
        cast(list[str], form.current_password.errors).append("That is not your current password.")
    return render_template("auth/account.html", form=form), 422
