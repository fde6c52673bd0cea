"""builds: the tree a whole-path regenerate replaces, shown while it runs

Revision ID: f1b2c3d4e5a6
Revises: e4a7c2b9d815
Create Date: 2026-11-25 17:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'f1b2c3d4e5a6'
down_revision = 'e4a7c2b9d815'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('build_jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('previous_tree', sa.JSON(), nullable=True))


def downgrade():
    with op.batch_alter_table('build_jobs', schema=None) as batch_op:
        batch_op.drop_column('previous_tree')
