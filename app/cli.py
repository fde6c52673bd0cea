"""`flask users …` and `flask jobs …`."""

from __future__ import annotations

from datetime import timedelta

import click
from flask.cli import AppGroup
from sqlalchemy import select

from app.emails import InvalidEmail, normalize_email
from app.extensions import db
from app.models import User

users_cli = AppGroup("users", help="Manage users and their API tokens.")
jobs_cli = AppGroup("jobs", help="Inspect and repair background work.")
generator_cli = AppGroup("generator", help="The content generator.")
RESPONSE_FORMAT_NAMES = {
    "json_schema": "structured output",
    "json_object": "JSON mode",
    "none": "the schema in the prompt only",
}


@generator_cli.command("check")
def check_generator() -> None:
    """Send one tiny request to the configured generator and say whether it works."""
    from flask import current_app

    from app.generators import build_generator
    from app.generators.schemas import PathBrief

    config = current_app.config
    where = (
        config["GENERATOR"]
        if config["GENERATOR"] == "offline"
        else (f"{config['OPENAI_MODEL']} at {config['OPENAI_BASE_URL']}")
    )
    try:
        generator = build_generator(config, fresh=True)
        concepts = generator.concepts(
            PathBrief(name="Check", topic="arithmetic", concept_count=1), lambda _: None
        )
    except Exception as exc:  # every failure is the answer here
        raise click.ClickException(
            f"the generator ({where}) does not work: {type(exc).__name__}: {exc}"
        ) from exc
    click.echo(
        f"the generator ({where}) works: it answered with {len(concepts)} concept(s), "
        f"e.g. {concepts[0].name!r}"
    )
    if response_format := getattr(generator, "response_format", None):
        click.echo(
            f"output format: {RESPONSE_FORMAT_NAMES[response_format]} (response_format={response_format})"
        )


@users_cli.command("create")
@click.argument("email")
@click.option("--password", required=True, help="The user's password.")
@click.option("--admin", is_flag=True, help="Let the user see everything.")
def create_user(email: str, password: str, admin: bool) -> None:
    """Create a user."""
    email = _email_argument(email)
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
    user = db.session.scalar(select(User).where(User.email == _email_argument(email)))
    if user is None:
        raise click.ClickException(f"no user {email}")
    token = user.issue_token()
    db.session.commit()
    click.echo(token)


def _email_argument(text: str) -> str:
    try:
        return normalize_email(text)
    except InvalidEmail as exc:
        raise click.BadParameter(str(exc), param_hint="EMAIL") from None


DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_age(text: str) -> timedelta:
    """'30d', '12h', '90m' or '3600s' as a timedelta."""
    number, unit = text[:-1], text[-1:].lower()
    if unit not in DURATION_UNITS or not number.isdigit() or int(number) <= 0:
        raise click.BadParameter(f"{text!r}: give a positive whole number with s, m, h or d (e.g. 30d)")
    return timedelta(seconds=int(number) * DURATION_UNITS[unit])


@jobs_cli.command("prune")
@click.option("--older-than", "older_than", required=True, help="Age, e.g. 30d, 12h, 90m.")
def prune(older_than: str) -> None:
    """Delete finished builds (with their steps, events and dead letters), finished lesson-plan
    runs and generator-call records older than the given age. Generated content is kept."""
    from app.jobs.retention import prune_history

    removed = prune_history(parse_age(older_than))
    click.echo(", ".join(f"{count} {what}" for what, count in removed.items()) + " removed")


@jobs_cli.command("reconcile")
def reconcile() -> None:
    """Queue whatever unfinished runs owe and Redis no longer holds (safe to repeat)."""
    from app.jobs.recovery import reconcile_all

    click.echo(f"queued {reconcile_all()} job(s)")
