"""Build jobs are enqueued by dotted path; each path must name the function that runs the job."""

from __future__ import annotations

from rq.utils import import_attribute

from app.models import StepType
from app.pipelines.learning_paths.finalize import finalize_build
from app.pipelines.learning_paths.queueing import FINALIZE_JOB_FUNCTION, STEP_JOB_FUNCTIONS
from app.pipelines.learning_paths.steps import STEP_FUNCTIONS


def test_every_step_type_is_enqueued_under_the_path_of_its_job_function() -> None:
    assert set(STEP_JOB_FUNCTIONS) == set(StepType)
    for kind, function in STEP_FUNCTIONS.items():
        assert import_attribute(STEP_JOB_FUNCTIONS[kind]) is function


def test_finalize_is_enqueued_under_the_path_of_finalize_build() -> None:
    assert import_attribute(FINALIZE_JOB_FUNCTION) is finalize_build
