"""`flask users …` and `flask jobs …`."""

from __future__ import annotations

from datetime import datetime, timedelta

import click
from flask import current_app
from flask.cli import AppGroup
from redis.exceptions import RedisError
from sqlalchemy import select

from app.emails import InvalidEmail, normalize_email
from app.extensions import db
from app.generators.schemas import PathBrief
from app.inputs import bounded_int
from app.jobs.queues import get_redis, redis_location
from app.jobs.recovery import reconcile_all
from app.jobs.retention import prune_history
from app.models import User
from app.pipelines.generation import build_pipeline_generator

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
    config = current_app.config
    where = (
        config["GENERATOR"]
        if config["GENERATOR"] == "offline"
        else (f"{config['OPENAI_MODEL']} at {config['OPENAI_BASE_URL']}")
    )
    try:
        generator = build_pipeline_generator(config, fresh=True)
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


def _user(email: str) -> User:
    user = db.session.scalar(select(User).where(User.email == _email_argument(email)))
    if user is None:
        raise click.ClickException(f"no user {email}")
    return user


@users_cli.command("token")
@click.argument("email")
@click.option("--expires-in", "expires_in", help="Lifetime, e.g. 90d, 12h (default: never expires).")
def issue_token(email: str, expires_in: str | None) -> None:
    """Print a new API token for a user (it is shown only once)."""
    lifetime = parse_age(expires_in) if expires_in is not None else None
    user = _user(email)
    token = user.issue_token(expires_in=lifetime)
    db.session.commit()
    click.echo(token)


def _when(value: datetime | None, missing: str) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else missing


@users_cli.command("tokens")
@click.argument("email")
def list_tokens(email: str) -> None:
    """List a user's API tokens: id, created, last used, expires (UTC; never the secret)."""
    click.echo(f"{'ID':>6}  {'CREATED':<16}  {'LAST USED':<16}  EXPIRES")
    for token in sorted(_user(email).tokens, key=lambda t: t.id):
        expires = _when(token.expires_at, "never") + (" (expired)" if token.has_expired() else "")
        created, used = _when(token.created_at, "-"), _when(token.last_used_at, "never")
        click.echo(f"{token.id:>6}  {created:<16}  {used:<16}  {expires}")


@users_cli.command("revoke-token")
@click.argument("email")
@click.argument("token_id", type=click.IntRange(1, 2**63 - 1))
def revoke_token(email: str, token_id: int) -> None:
    """Delete one of a user's API tokens (the id from `users tokens`): it stops working at once."""
    user = _user(email)
    token = next((t for t in user.tokens if t.id == token_id), None)
    if token is None:
        raise click.ClickException(f"{user.email} has no token {token_id}")
    db.session.delete(token)
    db.session.commit()
    click.echo(f"revoked token {token_id} of {user.email}")


@users_cli.command("password")
@click.argument("email")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True, help="The new password.")
def change_password(email: str, password: str) -> None:
    """Set a user's password; every sign-in session of theirs ends (API tokens stay)."""
    user = _user(email)
    user.set_password(password)
    ended = user.end_sessions()
    db.session.commit()
    click.echo(f"password changed for {user.email}; signed out of {ended} session(s)")


@users_cli.command("sign-out")
@click.argument("email")
def sign_out_everywhere(email: str) -> None:
    """End every sign-in session of a user (e.g. a lost laptop)."""
    user = _user(email)
    ended = user.end_sessions()
    db.session.commit()
    click.echo(f"signed {user.email} out of {ended} session(s)")


def _email_argument(text: str) -> str:
    try:
        return normalize_email(text)
    except InvalidEmail as exc:
        raise click.BadParameter(str(exc), param_hint="EMAIL") from None


DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_age(text: str) -> timedelta:
    """'30d', '12h', '90m' or '3600s' as a timedelta."""
    number, unit = text[:-1], text[-1:].lower()
    count = bounded_int(number, low=1, high=10**9)
    if unit not in DURATION_UNITS or count is None:
        raise click.BadParameter(f"{text!r}: give a positive whole number with s, m, h or d (e.g. 30d)")
    return timedelta(seconds=count * DURATION_UNITS[unit])


@jobs_cli.command("prune")
@click.option("--older-than", "older_than", required=True, help="Age, e.g. 30d, 12h, 90m.")
def prune(older_than: str) -> None:
    """Delete finished builds (with their steps, events and dead letters), finished lesson-plan
    runs and generator-call records older than the given age. Generated content is kept."""
    removed = prune_history(parse_age(older_than))
    click.echo(", ".join(f"{count} {what}" for what, count in removed.items()) + " removed")


@jobs_cli.command("reconcile")
def reconcile() -> None:
    """Queue whatever unfinished runs owe and Redis no longer holds (safe to repeat)."""
    try:
        get_redis().ping()  # a wrong REDIS_URL would otherwise report "queued 0" with nothing owed
    except RedisError as exc:
        raise click.ClickException(
            f"cannot reach Redis at {redis_location(current_app.config)} ({exc}): set REDIS_URL "
            "to the Redis your workers use (`make run` prints it)"
        ) from None
    click.echo(f"queued {reconcile_all()} job(s)")
