"""Tables and their small invariants."""

from app.models.build_events import BuildEvent
from app.models.builds import Build, BuildStep, StepType
from app.models.dead_letters import DeadLetter
from app.models.generation import GenerationMemo, GeneratorCall
from app.models.learning_paths import Concept, KnowledgeUnit, LearningPath, SubConcept
from app.models.statuses import BuildStatus, RunStatus, WorkflowStatus, WorkStatus
from app.models.users import ApiToken, User, UserSession
from app.models.workflows import LessonPlan, LessonPlanRun, Module, RunEvent, Workflow

__all__ = [
    "BuildEvent",
    "Build",
    "BuildStatus",
    "Concept",
    "DeadLetter",
    "GenerationMemo",
    "GeneratorCall",
    "BuildStep",
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
    "WorkflowStatus",
]
