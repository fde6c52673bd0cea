"""`python -m bench.profile_step`: where a step's time goes. Runs a build's steps one after
another in this process (no worker), under cProfile, and prints the costliest calls."""

from __future__ import annotations

import cProfile
import pstats
import time

from sqlalchemy import select

from app.extensions import db
from app.models import BuildStep, WorkStatus
from app.pipelines.learning_paths.steps import STEP_FUNCTIONS, StepType
from bench.harness import deployment


def main(concepts: int = 30) -> None:
    with deployment() as run:
        client = run.app.test_client()
        path = client.post(
            "/api/learning-paths",
            json={"name": "Profile", "topic": "statistics", "conceptCount": concepts},
            headers=run.auth,
        ).get_json()
        build_id = client.post(f"/api/jobs/build/{path['id']}", headers=run.auth).get_json()["jobId"]
        profile = cProfile.Profile()
        ran, started = 0, time.perf_counter()
        with run.app.app_context():
            while True:
                owed = db.session.execute(
                    select(BuildStep.id, BuildStep.type)
                    .where(BuildStep.build_id == build_id, BuildStep.status == WorkStatus.QUEUED)
                    .order_by(BuildStep.id)
                ).all()
                db.session.commit()
                if not owed:
                    break
                for step_id, kind in owed:
                    profile.runcall(STEP_FUNCTIONS[StepType(kind)], step_id)
                    db.session.remove()
                    ran += 1
        elapsed = time.perf_counter() - started
    print(f"{ran} steps in {elapsed:.2f} s: {1000 * elapsed / ran:.2f} ms a step in one process\n")
    pstats.Stats(profile).sort_stats("cumulative").print_stats(25)


if __name__ == "__main__":
    main()
