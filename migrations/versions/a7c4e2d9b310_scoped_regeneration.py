"""scoped regeneration: a build of one concept or sub-concept, a run of one module

Revision ID: a7c4e2d9b310
Revises: 7a3c9e1f5b40
Create Date: 2026-11-25 13:30:00.000000

"""

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "a7c4e2d9b310"
down_revision = "7a3c9e1f5b40"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("build_jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("scope_kind", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("scope_entity_id", sa.Integer(), nullable=True))
    with op.batch_alter_table("lesson_plan_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("scope_module_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            "fk_lesson_plan_runs_scope_module_id_modules",
            "modules",
            ["scope_module_id"],
            ["id"],
            ondelete="CASCADE",
        )


def downgrade():
    with op.batch_alter_table("lesson_plan_runs", schema=None) as batch_op:
        batch_op.drop_constraint("fk_lesson_plan_runs_scope_module_id_modules", type_="foreignkey")
        batch_op.drop_column("scope_module_id")
    with op.batch_alter_table("build_jobs", schema=None) as batch_op:
        batch_op.drop_column("scope_entity_id")
        batch_op.drop_column("scope_kind")
