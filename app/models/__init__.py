"""Tables and their small invariants."""

from app.models.builds import (
    BuildEvent,
    BuildJob,
    BuildStatus,
    DeadLetter,
    GenerationMemo,
    GeneratorCall,
    JobStep,
    StepType,
)
from app.models.learning_paths import Concept, KnowledgeUnit, LearningPath, SubConcept
from app.models.tracking import WorkStatus
from app.models.users import ApiToken, User, UserSession
from app.models.workflows import LessonPlan, LessonPlanRun, Module, RunEvent, RunStatus, Workflow

__all__ = [
    "BuildEvent",
    "BuildJob",
    "BuildStatus",
    "Concept",
    "DeadLetter",
    "GenerationMemo",
    "GeneratorCall",
    "JobStep",
    "KnowledgeUnit",
    "LearningPath",
    "StepType",
    "SubConcept",
    "ApiToken",
    "LessonPlan",
    "LessonPlanRun",
    "Module",
    "WorkStatus",
    "RunEvent",
    "RunStatus",
    "User",
    "UserSession",
    "Workflow",
]
