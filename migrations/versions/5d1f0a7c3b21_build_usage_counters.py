"""usage counters on builds, so a poll does not sum every call of the build

Revision ID: 5d1f0a7c3b21
Revises: c92d82d4f8f5
Create Date: 2026-11-24 13:30:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '5d1f0a7c3b21'
down_revision = 'c92d82d4f8f5'
branch_labels = None
depends_on = None

COUNTERS = {
    'usage_calls': 'count(*)',
    'usage_memo_hits': 'coalesce(sum(CASE WHEN c.memo_hit THEN 1 ELSE 0 END), 0)',
    'usage_prompt_tokens': 'coalesce(sum(c.prompt_tokens), 0)',
    'usage_completion_tokens': 'coalesce(sum(c.completion_tokens), 0)',
}


def upgrade():
    with op.batch_alter_table('build_jobs', schema=None) as batch_op:
        for name in COUNTERS:
            batch_op.add_column(sa.Column(name, sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('usage_models', sa.String(length=500), nullable=False, server_default=''))

    # Builds made before this revision: sum their call records once.
    for name, total in COUNTERS.items():
        op.execute(
            f"UPDATE build_jobs SET {name} = (SELECT {total} FROM generator_calls c "
            "WHERE c.build_id = build_jobs.id)"
        )
    bind = op.get_bind()
    rows = bind.execute(
        sa.text("SELECT DISTINCT build_id, model FROM generator_calls WHERE build_id IS NOT NULL")
    ).all()
    models: dict[str, set[str]] = {}
    for build_id, model in rows:
        models.setdefault(build_id, set()).add(model)
    for build_id, names in models.items():
        bind.execute(
            sa.text("UPDATE build_jobs SET usage_models = :models WHERE id = :id"),
            {"models": "," + ",".join(sorted(names)) + ",", "id": build_id},
        )


def downgrade():
    with op.batch_alter_table('build_jobs', schema=None) as batch_op:
        batch_op.drop_column('usage_models')
        for name in reversed(list(COUNTERS)):
            batch_op.drop_column(name)
