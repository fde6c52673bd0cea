"""Migrations on a database that already holds data."""

from __future__ import annotations

from flask_migrate import downgrade, upgrade
from sqlalchemy import update

from app.extensions import db
from app.models import Build, GeneratorCall, LearningPath, User


def test_usage_counters_are_backfilled_from_the_call_records_of_existing_builds(app):
    with app.app_context():
        user = User(email="owner@example.com")
        user.set_password("correct horse battery staple")
        db.session.add(user)
        db.session.flush()
        path = LearningPath(owner_id=user.id, name="P", topic="t")
        db.session.add(path)
        db.session.flush()
        build = Build(path_id=path.id, status="completed")
        db.session.add(build)
        db.session.flush()
        for model, memo_hit in (("m-1", False), ("m-2", True), ("m-1", False)):
            db.session.add(
                GeneratorCall(
                    kind="concepts",
                    build_id=build.id,
                    model=model,
                    prompt_tokens=10,
                    completion_tokens=5,
                    memo_hit=memo_hit,
                )
            )
        db.session.execute(update(Build).values(usage_calls=0, usage_models=""))
        db.session.commit()
        build_id = build.id
        db.session.remove()

        downgrade(revision="c92d82d4f8f5")  # a database from before the counters
        upgrade()

        build = db.session.get(Build, build_id)
        assert (build.usage_calls, build.usage_memo_hits) == (3, 1)
        assert (build.usage_prompt_tokens, build.usage_completion_tokens) == (30, 15)
        assert build.usage_models == ",m-1,m-2,"
