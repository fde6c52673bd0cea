"""People, their sign-in sessions and the API tokens they sign requests with."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from functools import cache

from flask_login import UserMixin
from sqlalchemy import ForeignKey, Select, String, bindparam, delete, select, update
from sqlalchemy.orm import Mapped, joinedload, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash

from app.database import execute_dml, utcnow
from app.extensions import Model, db

TOKEN_PREFIX = "cb_"
TOKEN_TOUCH_INTERVAL = timedelta(minutes=1)


def hash_token(token: str) -> str:
    """Tokens are long and random, so a fast hash is enough; only the hash is stored."""
    return hashlib.sha256(token.encode()).hexdigest()


@cache
def _dummy_password_hash() -> str:
    """Made like a real one, so checking an unknown email costs what a real check costs."""
    return generate_password_hash(secrets.token_urlsafe(16))


class User(UserMixin, Model):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    is_admin: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    tokens: Mapped[list[ApiToken]] = relationship(back_populates="user", cascade="all, delete-orphan")
    sessions: Mapped[list[UserSession]] = relationship(
        back_populates="user", cascade="all, delete-orphan", passive_deletes=True
    )

    def set_password(self, password: str) -> None:
        self.password_hash = generate_password_hash(password)

    def check_password(self, password: str) -> bool:
        return check_password_hash(self.password_hash, password)

    def issue_token(self, expires_in: timedelta | None = None) -> str:
        """Add a new token and return it in clear: the only time it is ever seen."""
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        expires_at = utcnow() + expires_in if expires_in else None
        self.tokens.append(ApiToken(token_hash=hash_token(token), expires_at=expires_at))
        return token

    def start_session(self) -> str:
        """Record a new sign-in session and return its id in clear, for the signed cookie only."""
        session_id = secrets.token_urlsafe(32)
        self.sessions.append(UserSession(id=hash_token(session_id)))
        return session_id

    def end_sessions(self, keep: str | None = None, only: str | None = None) -> int:
        """End this user's sessions: all, all but `keep`, or `only` one; returns how many ended."""
        query = delete(UserSession).where(UserSession.user_id == self.id)
        if keep is not None:
            query = query.where(UserSession.id != hash_token(keep))
        if only is not None:
            query = query.where(UserSession.id == hash_token(only))
        return execute_dml(query).rowcount

    def end_expired_sessions(self, max_age: timedelta) -> None:
        db.session.execute(
            delete(UserSession).where(
                UserSession.user_id == self.id, UserSession.created_at <= utcnow() - max_age
            )
        )


def authenticate(email: str, password: str) -> User | None:
    """The user whose password this is, in the same time whether or not the email exists."""
    user = db.session.scalar(select(User).where(User.email == email))
    if user is None:
        check_password_hash(_dummy_password_hash(), password)
        return None
    return user if user.check_password(password) else None


def signed_in_user(user_id: int, session_id: str, max_age: timedelta) -> User | None:
    """The user of a session that has not been ended and is younger than `max_age`, in one query."""
    return db.session.scalar(
        _signed_in_user_query(),
        {"user_id": user_id, "session_hash": hash_token(session_id), "since": utcnow() - max_age},
    )


@cache
def _signed_in_user_query() -> Select[User]:
    """Built once: every signed-in request runs it, and building it cost more than running it."""
    return (
        select(User)
        .join(UserSession)
        .where(
            User.id == bindparam("user_id"),
            UserSession.id == bindparam("session_hash"),
            UserSession.created_at > bindparam("since"),
        )
    )


class UserSession(Model):
    """One signed-in browser: the cookie holds the id, the table only its hash; no row, no session."""

    __tablename__ = "user_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    user: Mapped[User] = relationship(back_populates="sessions")


class ApiToken(Model):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)

    user: Mapped[User] = relationship(back_populates="tokens")

    @classmethod
    def find(cls, token: str) -> ApiToken | None:
        """The token's row with its user, in one query."""
        return db.session.scalar(
            select(cls).where(cls.token_hash == hash_token(token)).options(joinedload(cls.user))
        )

    def has_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= utcnow()

    def note_use(self) -> None:
        """Stamp the last use at most once a minute per token, in its own short transaction so
        neither the request's session nor most requests pay a write."""
        now = utcnow()
        if self.last_used_at is not None and now - self.last_used_at < TOKEN_TOUCH_INTERVAL:
            return
        stale = ApiToken.last_used_at.is_(None) | (ApiToken.last_used_at < now - TOKEN_TOUCH_INTERVAL)
        with db.engine.begin() as connection:
            connection.execute(update(ApiToken).where(ApiToken.id == self.id, stale).values(last_used_at=now))
