"""outbox claims name their holder: the relay of one process, which holds a
session advisory lock for its life, so a claim whose holder is gone is
taken over at once instead of when its lease runs out.

Revision ID: 0004
Revises: 0003
"""
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE outbox_messages ADD COLUMN claimed_by integer")


def downgrade() -> None:
    op.execute("ALTER TABLE outbox_messages DROP COLUMN claimed_by")
