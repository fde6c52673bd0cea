"""steps and modules: the next rate-limit slot while waiting, and the time waited

Revision ID: e4a7c2b9d815
Revises: a7c4e2d9b310
Create Date: 2026-11-25 13:30:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'e4a7c2b9d815'
down_revision = 'a7c4e2d9b310'
branch_labels = None
depends_on = None

TABLES = ('job_steps', 'modules')


def upgrade():
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('rate_limit_next_slot_at', sa.DateTime(), nullable=True))
            batch_op.add_column(
                sa.Column('rate_limit_waited_ms', sa.Integer(), nullable=False, server_default='0')
            )


def downgrade():
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column('rate_limit_waited_ms')
            batch_op.drop_column('rate_limit_next_slot_at')
