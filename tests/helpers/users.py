"""Users made straight in the database, with a token for the API."""

from __future__ import annotations

from flask import Flask

from app.extensions import db
from app.models import User

PASSWORD = "correct horse battery staple"


def make_user(app: Flask, email: str, admin: bool = False) -> dict[str, str]:
    """Create a user and return the Authorization header for a new token of theirs."""
    with app.app_context():
        user = User(email=email, is_admin=admin)
        user.set_password(PASSWORD)
        db.session.add(user)
        token = user.issue_token()
        db.session.commit()
    return {"Authorization": f"Bearer {token}"}
