"""What each pipeline hands the job machinery's recovery sweep (app/jobs knows no pipeline)."""

from __future__ import annotations

from flask import Flask

from app.jobs.recovery import register_reconciler
from app.pipelines.learning_paths.recovery import reconcile_builds
from app.pipelines.lesson_plans.run import reconcile_lesson_plan_runs


def register_pipeline_recovery(app: Flask) -> None:
    """Lesson-plan runs first, then builds: the order the sweep has always taken."""
    register_reconciler(app, reconcile_lesson_plan_runs)
    register_reconciler(app, reconcile_builds)
