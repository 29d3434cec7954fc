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
    # One reject in flight per target: a retried reject joins it, so an
    # older one can never land after the target was resubmitted.
    op.execute("""CREATE UNIQUE INDEX one_pending_reject_per_target ON decisions (target_id)
                  WHERE kind = 'reject' AND status = 'pending'""")


def downgrade() -> None:
    op.execute("DROP INDEX one_pending_reject_per_target")
    op.execute("DELETE FROM outbox_messages WHERE topic = 'reject.reject_target'")
    op.execute("DELETE FROM decisions WHERE kind = 'reject' AND status <> 'rejected'")
    op.execute("ALTER TABLE decisions DROP CONSTRAINT reject_is_pending_rejected_or_failed")
    op.execute("ALTER TABLE decisions ADD CONSTRAINT decisions_check CHECK (kind = 'approve' OR status = 'rejected')")
