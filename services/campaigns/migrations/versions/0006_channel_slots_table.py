"""a booked post's slot moves to a table of its own, channel_slots, where
the exclusion constraint lives: a target's status changes (reserve,
approve: the approve path) no longer maintain a GiST index or run an
exclusion check; only booking (submit) and freeing do.

A slot row exists exactly while its target is booked (submitted, approving,
approved or published): submit inserts it, and a trigger deletes it in the
transaction that moves the target out of those statuses.

Revision ID: 0006
Revises: 0005
"""
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        CREATE TABLE channel_slots (
            target_id uuid PRIMARY KEY REFERENCES targets (id),
            channel_id uuid NOT NULL REFERENCES channels (id),
            slot tstzrange NOT NULL CHECK (NOT isempty(slot)),
            CONSTRAINT channel_slots_one_post_per_slot EXCLUDE USING gist (channel_id WITH =, slot WITH &&)
        )""")
    op.execute("""
        INSERT INTO channel_slots (target_id, channel_id, slot)
        SELECT id, channel_id, slot FROM targets
         WHERE slot IS NOT NULL AND status IN ('submitted', 'approving', 'approved', 'published')""")
    op.execute("""
        CREATE FUNCTION free_channel_slot() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            DELETE FROM channel_slots WHERE target_id = NEW.id;
            RETURN NULL;
        END $$""")
    # WHEN is judged without calling the function: status changes inside
    # the booked statuses (the approve path) cost nothing.
    op.execute("""
        CREATE TRIGGER targets_free_channel_slot AFTER UPDATE OF status ON targets FOR EACH ROW
        WHEN (OLD.status IN ('submitted', 'approving', 'approved', 'published')
              AND NEW.status NOT IN ('submitted', 'approving', 'approved', 'published'))
        EXECUTE FUNCTION free_channel_slot()""")
    op.execute("DROP INDEX targets_booked_by_channel")
    op.execute("ALTER TABLE targets DROP CONSTRAINT targets_one_post_per_channel_slot")
    op.execute("ALTER TABLE targets DROP COLUMN slot")


def downgrade() -> None:
    op.execute("ALTER TABLE targets ADD COLUMN slot tstzrange")
    op.execute("UPDATE targets t SET slot = s.slot FROM channel_slots s WHERE s.target_id = t.id")
    op.execute("""ALTER TABLE targets ADD CONSTRAINT targets_one_post_per_channel_slot
                  EXCLUDE USING gist (channel_id WITH =, slot WITH &&)
                  WHERE (slot IS NOT NULL AND status IN ('submitted', 'approving', 'approved', 'published'))""")
    op.execute("""CREATE INDEX targets_booked_by_channel ON targets (channel_id, scheduled_at)
                  WHERE status IN ('submitted', 'approving', 'approved', 'published')""")
    op.execute("DROP TRIGGER targets_free_channel_slot ON targets")
    op.execute("DROP FUNCTION free_channel_slot()")
    op.execute("DROP TABLE channel_slots")
