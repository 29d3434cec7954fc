"""dead letters are counted through a partial index

Revision ID: 0003
Revises: 0002
"""
from alembic import op

from common.outbox import DDL_DEAD_LETTER_INDEX

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(DDL_DEAD_LETTER_INDEX)


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS outbox_dead")
