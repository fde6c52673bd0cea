"""A learning path and the tree a build generates for it: concepts → sub-concepts → units.

Each level records when its children were stored (`concepts_generated_at`, `decomposed_at`,
`units_generated_at`): work done is never done again, by a retry or by a later build.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.database import isoformat, utcnow
from app.extensions import Model
from app.models.workflows import new_id


class LearningPath(Model):
    __tablename__ = "learning_paths"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    topic: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    concept_count: Mapped[int | None]  # asked for; None lets the generator choose
    concepts_generated_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    concepts: Mapped[list[Concept]] = relationship(
        back_populates="path", order_by="Concept.position", cascade="all, delete-orphan"
    )

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "topic": self.topic,
            "description": self.description,
            "conceptCount": self.concept_count,
            "createdAt": isoformat(self.created_at),
        }


class Concept(Model):
    __tablename__ = "concepts"
    __table_args__ = (UniqueConstraint("path_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    path_id: Mapped[str] = mapped_column(ForeignKey("learning_paths.id", ondelete="CASCADE"))
    position: Mapped[int]
    name: Mapped[str] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(Text, default="")
    decomposed_at: Mapped[datetime | None]

    path: Mapped[LearningPath] = relationship(back_populates="concepts")
    sub_concepts: Mapped[list[SubConcept]] = relationship(
        back_populates="concept", order_by="SubConcept.position", cascade="all, delete-orphan"
    )


class SubConcept(Model):
    __tablename__ = "sub_concepts"
    __table_args__ = (UniqueConstraint("concept_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    concept_id: Mapped[int] = mapped_column(ForeignKey("concepts.id", ondelete="CASCADE"), index=True)
    position: Mapped[int]
    name: Mapped[str] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(Text, default="")
    units_generated_at: Mapped[datetime | None]

    concept: Mapped[Concept] = relationship(back_populates="sub_concepts")
    knowledge_units: Mapped[list[KnowledgeUnit]] = relationship(
        back_populates="sub_concept", order_by="KnowledgeUnit.position", cascade="all, delete-orphan"
    )


class KnowledgeUnit(Model):
    __tablename__ = "knowledge_units"
    __table_args__ = (UniqueConstraint("sub_concept_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    sub_concept_id: Mapped[int] = mapped_column(ForeignKey("sub_concepts.id", ondelete="CASCADE"), index=True)
    position: Mapped[int]
    title: Mapped[str] = mapped_column(String(300))
    kind: Mapped[str] = mapped_column(String(40))
    content: Mapped[str] = mapped_column(Text)

    sub_concept: Mapped[SubConcept] = relationship(back_populates="knowledge_units")
