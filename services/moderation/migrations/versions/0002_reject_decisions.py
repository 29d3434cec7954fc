"""a reject is a recorded step too: pending until campaigns answers

Revision ID: 0002
Revises: 0001
"""
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE decisions DROP CONSTRAINT decisions_check")
    op.execute("""ALTER TABLE decisions ADD CONSTRAINT reject_is_pending_rejected_or_failed
                  CHECK (kind = 'approve' OR status IN ('pending', 'rejected', 'failed'))""")


def downgrade() -> None:
    op.execute("ALTER TABLE decisions DROP CONSTRAINT reject_is_pending_rejected_or_failed")
    op.execute("ALTER TABLE decisions ADD CONSTRAINT decisions_check CHECK (kind = 'approve' OR status = 'rejected')")
