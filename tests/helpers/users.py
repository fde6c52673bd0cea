"""Users made straight in the database, with a token for the API."""

from __future__ import annotations

from flask import Flask
from werkzeug.security import generate_password_hash

from app.extensions import db
from app.models import User

PASSWORD = "correct horse battery staple"
# A test user's password is stored with one round of PBKDF2: the app checks it as it checks any
# werkzeug hash, without the 80 ms of CPU that scrypt costs per user and again per sign-in.
# `production_hash=True` stores what `User.set_password` stores, for tests that time sign-in.
TEST_HASH_METHOD = "pbkdf2:sha256:1"


def make_user(app: Flask, email: str, admin: bool = False, production_hash: bool = False) -> dict[str, str]:
    """Create a user and return the Authorization header for a new token of theirs."""
    with app.app_context():
        user = User(email=email, is_admin=admin)
        if production_hash:
            user.set_password(PASSWORD)
        else:
            user.password_hash = generate_password_hash(PASSWORD, method=TEST_HASH_METHOD)
        db.session.add(user)
        token = user.issue_token()
        db.session.commit()
    return {"Authorization": f"Bearer {token}"}
