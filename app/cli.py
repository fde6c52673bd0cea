"""`flask users …` and `flask jobs …`."""

from __future__ import annotations

import click
from flask.cli import AppGroup
from sqlalchemy import select

from app.extensions import db
from app.models import User

users_cli = AppGroup("users", help="Manage users and their API tokens.")
jobs_cli = AppGroup("jobs", help="Inspect and repair background work.")


@users_cli.command("create")
@click.argument("email")
@click.option("--password", required=True, help="The user's password.")
@click.option("--admin", is_flag=True, help="Let the user see everything.")
def create_user(email: str, password: str, admin: bool) -> None:
    """Create a user."""
    email = email.strip().lower()
    if db.session.scalar(select(User).where(User.email == email)):
        raise click.ClickException(f"a user {email} exists already")
    user = User(email=email, is_admin=admin)
    user.set_password(password)
    db.session.add(user)
    db.session.commit()
    click.echo(f"created {'admin ' if admin else ''}user {email}")


@users_cli.command("token")
@click.argument("email")
def issue_token(email: str) -> None:
    """Print a new API token for a user (it is shown only once)."""
    user = db.session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None:
        raise click.ClickException(f"no user {email}")
    token = user.issue_token()
    db.session.commit()
    click.echo(token)


@jobs_cli.command("reconcile")
def reconcile() -> None:
    """Queue whatever unfinished runs owe and Redis no longer holds (safe to repeat)."""
    from app.jobs.recovery import reconcile_all

    click.echo(f"queued {reconcile_all()} job(s)")
