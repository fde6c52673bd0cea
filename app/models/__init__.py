"""Tables and their small invariants."""

from app.models.tracking import WorkStatus
from app.models.users import ApiToken, User
from app.models.workflows import LessonPlan, LessonPlanRun, Module, RunStatus, Workflow

__all__ = [
    "ApiToken",
    "LessonPlan",
    "LessonPlanRun",
    "Module",
    "WorkStatus",
    "RunStatus",
    "User",
    "Workflow",
]
