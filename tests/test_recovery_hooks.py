"""The recovery sweep knows no pipeline: it runs what each pipeline registered at app start."""

from __future__ import annotations

from flask import Flask

from app.jobs.recovery import RECONCILERS, reconcile_all, register_reconciler
from app.pipelines.learning_paths.recovery import reconcile_builds
from app.pipelines.lesson_plans.run import reconcile_lesson_plan_runs


def test_the_app_registers_lesson_plan_runs_then_builds_with_the_sweep(app: Flask) -> None:
    assert app.extensions[RECONCILERS] == [reconcile_lesson_plan_runs, reconcile_builds]


def test_the_sweep_runs_each_registered_pass_in_order_and_sums_what_they_queued(app: Flask) -> None:
    ran: list[str] = []
    app.extensions[RECONCILERS] = []
    register_reconciler(app, lambda: ran.append("first") or 2)
    register_reconciler(app, lambda: ran.append("second") or 3)
    with app.app_context():
        assert reconcile_all() == 5
    assert ran == ["first", "second"]
