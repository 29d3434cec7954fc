"""Channels, campaigns, creatives, targets, post jobs, saga step records,
audit log and the outbox.

Revision ID: 0001
Revises:
"""
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

STATEMENTS = [
    """CREATE TABLE channels (
        id uuid PRIMARY KEY,
        owner_id uuid NOT NULL,
        title text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
        handle text NOT NULL CHECK (handle ~ '^@[A-Za-z0-9_]{3,64}$'),
        price_per_post bigint NOT NULL CHECK (price_per_post > 0 AND price_per_post < 1000000000000),
        currency text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
        status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'approved', 'rejected')),
        rejection_reason text,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
    )""",
    "CREATE INDEX channels_page ON channels (created_at, id)",
    """CREATE TABLE campaigns (
        id uuid PRIMARY KEY,
        advertiser_id uuid NOT NULL,
        name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
        status text NOT NULL DEFAULT 'draft'
            CHECK (status IN ('draft', 'active', 'paused', 'completed', 'cancelled')),
        start_at timestamptz,
        end_at timestamptz,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
    )""",
    "CREATE INDEX campaigns_page ON campaigns (created_at, id)",
    "CREATE INDEX campaigns_by_advertiser ON campaigns (advertiser_id, created_at, id)",
    """CREATE TABLE creatives (
        id uuid PRIMARY KEY,
        campaign_id uuid NOT NULL REFERENCES campaigns (id),
        seq bigserial NOT NULL,
        text text NOT NULL CHECK (length(text) BETWEEN 1 AND 4096),
        media_url text,
        created_at timestamptz NOT NULL DEFAULT now()
    )""",
    "CREATE INDEX creatives_by_campaign ON creatives (campaign_id, seq)",
    """CREATE TABLE targets (
        id uuid PRIMARY KEY,
        campaign_id uuid NOT NULL REFERENCES campaigns (id),
        channel_id uuid NOT NULL REFERENCES channels (id),
        scheduled_at timestamptz NOT NULL,
        price bigint NOT NULL CHECK (price > 0),
        currency text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
        status text NOT NULL DEFAULT 'pending' CHECK (status IN (
            'pending', 'submitted', 'approving', 'approved', 'rejected', 'cancelled', 'published', 'failed')),
        moderated_by uuid,
        moderated_at timestamptz,
        moderation_reason text,
        submitted_at timestamptz,
        reserved_by uuid,
        escrow_id uuid,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        -- the semantic lock of an approve saga: held exactly while approving
        CONSTRAINT targets_lock_iff_approving CHECK ((status = 'approving') = (reserved_by IS NOT NULL))
    )""",
    "CREATE INDEX targets_by_campaign ON targets (campaign_id, created_at, id)",
    "CREATE INDEX targets_page ON targets (created_at, id)",
    "CREATE INDEX targets_queue ON targets (submitted_at, id) WHERE status = 'submitted'",
    """CREATE TABLE post_jobs (
        id uuid PRIMARY KEY,
        target_id uuid NOT NULL REFERENCES targets (id),
        execute_at timestamptz NOT NULL,
        status text NOT NULL DEFAULT 'queued'
            CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT post_jobs_one_per_target UNIQUE (target_id)
    )""",
    # One recorded outcome per (decision, step): a repeat is answered from it.
    """CREATE TABLE saga_steps (
        decision_id uuid NOT NULL,
        step text NOT NULL CHECK (step IN ('reserve', 'release', 'approve')),
        target_id uuid NOT NULL,
        outcome text NOT NULL,
        detail jsonb NOT NULL DEFAULT '{}'::jsonb,
        created_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (decision_id, step)
    )""",
    """CREATE TABLE audit_log (
        id bigserial PRIMARY KEY,
        actor_id uuid NOT NULL,
        actor_role text NOT NULL,
        action text NOT NULL,
        entity_type text NOT NULL,
        entity_id uuid NOT NULL,
        from_status text,
        to_status text,
        correlation_id text NOT NULL,
        detail jsonb NOT NULL DEFAULT '{}'::jsonb,
        at timestamptz NOT NULL DEFAULT now()
    )""",
    "CREATE INDEX audit_by_entity ON audit_log (entity_id, id)",
    # The transactional outbox (common/outbox.py reads and writes it).
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
    for statement in STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    for table in ("outbox_messages", "audit_log", "saga_steps", "post_jobs", "targets", "creatives",
                  "campaigns", "channels"):
        op.execute(f"DROP TABLE IF EXISTS {table}")
