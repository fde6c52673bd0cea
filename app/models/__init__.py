"""Tables and their small invariants."""

from app.models.users import ApiToken, User
from app.models.workflows import (
    LessonPlan,
    LessonPlanRun,
    Module,
    ModuleStatus,
    RunStatus,
    Workflow,
)

__all__ = [
    "ApiToken",
    "LessonPlan",
    "LessonPlanRun",
    "Module",
    "ModuleStatus",
    "RunStatus",
    "User",
    "Workflow",
]
