"""decisions, the approve saga's state, and the outbox

Revision ID: 0001
Revises:
"""
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# The transactional outbox (common/outbox.py reads and writes it).
OUTBOX_STATEMENTS = [
    """CREATE TABLE outbox_messages (
        id bigserial PRIMARY KEY,
        topic text NOT NULL,
        aggregate_id text NOT NULL,
        payload jsonb NOT NULL,
        status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'dead')),
        attempts integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
        next_attempt_at timestamptz NOT NULL DEFAULT now(),
        claimed_until timestamptz,
        last_error text,
        created_at timestamptz NOT NULL DEFAULT now(),
        delivered_at timestamptz
    )""",
    "CREATE INDEX outbox_due ON outbox_messages (next_attempt_at, id) WHERE status = 'pending'",
    "CREATE INDEX outbox_aggregate_pending ON outbox_messages (aggregate_id, id) WHERE status = 'pending'",
]


def upgrade() -> None:
    op.execute("""
        CREATE TABLE decisions (
            id uuid PRIMARY KEY,
            target_id uuid NOT NULL,
            kind text NOT NULL CHECK (kind IN ('approve', 'reject')),
            status text NOT NULL CHECK (status IN
                ('pending', 'reserved', 'escrow_held', 'approved', 'compensating', 'failed', 'rejected')),
            moderator_id uuid NOT NULL,
            reason text,
            reason_message text,
            escrow_id uuid,
            post_job_id uuid,
            advertiser_id uuid,
            publisher_id uuid,
            amount bigint CHECK (amount > 0),
            currency text,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            CHECK (kind = 'approve' OR status = 'rejected'),
            CHECK (status <> 'rejected' OR kind = 'reject'),
            CHECK (status NOT IN ('escrow_held', 'approved', 'compensating') OR escrow_id IS NOT NULL),
            CHECK (status <> 'approved' OR post_job_id IS NOT NULL)
        )""")
    # At most one live approve saga per target: concurrent approves join it.
    op.execute("""CREATE UNIQUE INDEX one_live_approve_per_target ON decisions (target_id)
                  WHERE kind = 'approve' AND status IN ('pending', 'reserved', 'escrow_held', 'compensating')""")
    # A target is approved once, ever.
    op.execute("CREATE UNIQUE INDEX one_approval_per_target ON decisions (target_id) WHERE status = 'approved'")
    op.execute("CREATE INDEX decisions_by_target ON decisions (target_id, created_at DESC)")
    for statement in OUTBOX_STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TABLE outbox_messages")
    op.execute("DROP TABLE decisions")
