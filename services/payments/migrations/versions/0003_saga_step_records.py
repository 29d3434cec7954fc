"""HoldEscrow's outcomes move to saga_steps, the step record every
participant keeps: (decision_id, step) → outcome, detail, target_id
(common/steps.py). An 'insufficient_funds' outcome becomes a 'refused'
record whose detail carries the reason and the message it was answered
with, as campaigns records its refusals.

Stop payments before upgrading: a process of the old code would still
write escrow_decisions.

Revision ID: 0003
Revises: 0002
"""
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        CREATE TABLE saga_steps (
            decision_id uuid NOT NULL,
            step text NOT NULL CHECK (step IN ('hold')),
            target_id uuid NOT NULL,
            outcome text NOT NULL CHECK (outcome IN ('held', 'refused')),
            detail jsonb NOT NULL DEFAULT '{}'::jsonb,
            created_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (decision_id, step)
        )""")
    op.execute("""
        INSERT INTO saga_steps (decision_id, step, target_id, outcome, detail, created_at)
        SELECT decision_id, 'hold', target_id,
               CASE outcome WHEN 'held' THEN 'held' ELSE 'refused' END,
               CASE outcome WHEN 'held' THEN '{}'::jsonb
                    ELSE jsonb_build_object('code', outcome, 'message', message) END,
               created_at
          FROM escrow_decisions""")
    op.execute("DROP TABLE escrow_decisions")


def downgrade() -> None:
    op.execute("""
        CREATE TABLE escrow_decisions (
            decision_id uuid PRIMARY KEY,
            target_id uuid NOT NULL,
            outcome text NOT NULL CHECK (outcome IN ('held', 'insufficient_funds')),
            message text NOT NULL DEFAULT '',
            created_at timestamptz NOT NULL DEFAULT now()
        )""")
    op.execute("""
        INSERT INTO escrow_decisions (decision_id, target_id, outcome, message, created_at)
        SELECT decision_id, target_id,
               CASE outcome WHEN 'held' THEN 'held' ELSE 'insufficient_funds' END,
               coalesce(detail ->> 'message', ''), created_at
          FROM saga_steps WHERE step = 'hold'""")
    op.execute("DROP TABLE saga_steps")
