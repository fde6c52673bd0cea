"""What a generator is given and what it must return; shared by every provider."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ModuleBrief(BaseModel):
    workflow_title: str
    topic: str
    audience: str | None = None
    module_title: str
    module_index: int
    total_modules: int
    contact_hours: float


class Activity(BaseModel):
    name: str = Field(min_length=1)
    kind: str = Field(min_length=1)
    duration_minutes: int = Field(ge=1)


class LessonPlanDraft(BaseModel):
    title: str = Field(min_length=1, max_length=300)
    objectives: list[str] = Field(min_length=1)
    activities: list[Activity] = Field(min_length=1)
    assessment: str = Field(min_length=1)
    duration_minutes: int = Field(ge=1)


class PathBrief(BaseModel):
    name: str
    topic: str
    description: str | None = None
    concept_count: int | None = None


class ConceptBrief(BaseModel):
    path_name: str
    topic: str
    concept_name: str
    concept_description: str
    position: int
    total_concepts: int


class SubConceptBrief(BaseModel):
    topic: str
    concept_name: str
    sub_concept_name: str
    sub_concept_description: str
    position: int


class ConceptDraft(BaseModel):
    name: str = Field(min_length=1, max_length=300)
    description: str


class SubConceptDraft(BaseModel):
    name: str = Field(min_length=1, max_length=300)
    description: str


class KnowledgeUnitDraft(BaseModel):
    title: str = Field(min_length=1, max_length=300)
    kind: str = Field(min_length=1, max_length=40)
    content: str = Field(min_length=1)


# What a model must answer with: one object per generation (JSON objects, not bare arrays, so
# both structured output and plain JSON mode can ask for them).


class LessonPlansAnswer(BaseModel):
    lesson_plans: list[LessonPlanDraft] = Field(min_length=1)


class ConceptsAnswer(BaseModel):
    concepts: list[ConceptDraft] = Field(min_length=1)


class SubConceptsAnswer(BaseModel):
    sub_concepts: list[SubConceptDraft] = Field(min_length=1)


class KnowledgeUnitsAnswer(BaseModel):
    knowledge_units: list[KnowledgeUnitDraft] = Field(min_length=1)
