"""dead letters are counted through a partial index

Revision ID: 0003
Revises: 0002
"""
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE INDEX IF NOT EXISTS outbox_dead ON outbox_messages (id) WHERE status = 'dead'")


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS outbox_dead")
