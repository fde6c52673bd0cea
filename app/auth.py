"""Sign in and out of the pages (Flask-Login sessions); the API uses bearer tokens instead."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import login_required, login_user, logout_user
from sqlalchemy import select

from app.extensions import db, login_manager
from app.forms import SignInForm
from app.models import User

bp = Blueprint("auth", __name__)


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    return db.session.get(User, int(user_id)) if user_id.isdigit() else None


def _safe_next(target: str | None) -> str:
    """Only a path on this site: never an open redirect."""
    if target and target.startswith("/") and not target.startswith("//") and not urlsplit(target).netloc:
        return target
    return url_for("web.home")


@bp.route("/sign-in", methods=["GET", "POST"])
def sign_in():  # type: ignore[no-untyped-def]
    """Show the sign-in form; sign the person in."""
    form = SignInForm()
    if form.validate_on_submit():
        user = db.session.scalar(select(User).where(User.email == form.email.data))
        if user is not None and user.check_password(form.password.data):
            login_user(user)
            return redirect(_safe_next(request.args.get("next")))
        form.password.errors.append("That email and password do not match.")
    return render_template("auth/sign_in.html", form=form), 200 if request.method == "GET" else 422


@bp.post("/sign-out")
@login_required
def sign_out():  # type: ignore[no-untyped-def]
    """Sign out."""
    logout_user()
    flash("Signed out.")
    return redirect(url_for("auth.sign_in"))
