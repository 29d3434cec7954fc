"""one post per channel per slot: a booked target holds the slot
[scheduled_at, scheduled_at + the channel post gap) and no two booked
targets of a channel (submitted, approving, approved or published) may
hold overlapping slots, enforced by an exclusion constraint.

The slot is written by the code that books (submit), with the gap in force
then. Targets booked before this migration hold no slot (NULL): they are
still counted by the check the code makes before booking, but the
constraint cannot be added over bookings that may already overlap.

Revision ID: 0004
Revises: 0003
"""
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
    op.execute("ALTER TABLE targets ADD COLUMN slot tstzrange")
    op.execute("""ALTER TABLE targets ADD CONSTRAINT targets_one_post_per_channel_slot
                  EXCLUDE USING gist (channel_id WITH =, slot WITH &&)
                  WHERE (slot IS NOT NULL AND status IN ('submitted', 'approving', 'approved', 'published'))""")
    op.execute("""CREATE INDEX targets_booked_by_channel ON targets (channel_id, scheduled_at)
                  WHERE status IN ('submitted', 'approving', 'approved', 'published')""")


def downgrade() -> None:
    op.execute("DROP INDEX targets_booked_by_channel")
    op.execute("ALTER TABLE targets DROP CONSTRAINT targets_one_post_per_channel_slot")
    op.execute("ALTER TABLE targets DROP COLUMN slot")
