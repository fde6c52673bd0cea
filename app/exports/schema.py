"""The JSON export documents, version 1, as models: the shape docs/EXPORT.md describes, strict
(no key more, none missing), so a test or a consumer can check a document against it."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

Timestamp = Annotated[str, StringConstraints(pattern=r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")]
Number = Annotated[int, Field(ge=1)]  # 1-based, as people count: module 2 is "Module 2"


class Document(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class ActivityV1(Document):
    name: str
    kind: str
    durationMinutes: int


class LessonPlanV1(Document):
    number: Number
    title: str
    durationMinutes: int
    objectives: list[str]
    activities: list[ActivityV1]
    assessment: str


class ModuleV1(Document):
    number: Number
    title: str
    contactHours: float
    status: str
    lessonPlans: list[LessonPlanV1]


class WorkflowV1(Document):
    id: str
    title: str
    topic: str
    audience: str | None
    createdAt: Timestamp


class LessonPlansTotalsV1(Document):
    modules: int
    lessonPlans: int
    contactHours: float


class LessonPlansExportV1(Document):
    schemaVersion: Literal[1]
    kind: Literal["lessonPlans"]
    exportedAt: Timestamp
    workflow: WorkflowV1
    modules: list[ModuleV1]
    totals: LessonPlansTotalsV1


class KnowledgeUnitV1(Document):
    number: Number
    title: str
    kind: str
    content: str


class SubConceptV1(Document):
    number: Number
    name: str
    description: str
    knowledgeUnits: list[KnowledgeUnitV1]


class ConceptV1(Document):
    number: Number
    name: str
    description: str
    subConcepts: list[SubConceptV1]


class PathV1(Document):
    id: str
    name: str
    topic: str
    description: str | None
    conceptCount: int | None
    createdAt: Timestamp


class LearningPathTotalsV1(Document):
    concepts: int
    subConcepts: int
    knowledgeUnits: int


class LearningPathExportV1(Document):
    schemaVersion: Literal[1]
    kind: Literal["learningPath"]
    exportedAt: Timestamp
    path: PathV1
    concepts: list[ConceptV1]
    totals: LearningPathTotalsV1
