"""Publication: post jobs run (queued → publishing → published → verified,
or cancelled, failed, needs_review), channels keep the Telegram chat id the
bot posts to, and a target ends completed (kept up, publisher paid).

A post job carries what its worker needs, in columns the database guards:
- `due_at`: when a worker next acts on it (publish, or the next proof check);
- `claimed_by`/`claimed_until`: the worker holding it and the lease's end
  (set exactly while it is publishing, or while a check is under way);
- the message (`chat_id`, `message_id`, `message_url`) set from published on;
- `checks_at`: the planned proof checks, `checks_done` how many passed,
  `check_failures` how many tries of the next one failed in a row (its backoff).

Old statuses map: running → needs_review (a worker may have been mid-call:
an admin decides), succeeded → verified.

Revision ID: 0007
Revises: 0006
"""
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

JOB_STATUSES = "('queued', 'publishing', 'published', 'verified', 'cancelled', 'failed', 'needs_review')"
TARGET_STATUSES = ("('pending', 'submitted', 'approving', 'approved', 'rejected', 'cancelled', 'published',"
                   " 'failed', 'completed')")


def upgrade() -> None:
    op.execute("ALTER TABLE channels ADD COLUMN chat_id bigint")
    op.execute("ALTER TABLE targets DROP CONSTRAINT targets_status_check")
    op.execute(f"ALTER TABLE targets ADD CONSTRAINT targets_status_check CHECK (status IN {TARGET_STATUSES})")
    op.execute("ALTER TABLE post_jobs DROP CONSTRAINT post_jobs_status_check")
    op.execute("UPDATE post_jobs SET status = 'needs_review' WHERE status = 'running'")
    op.execute("UPDATE post_jobs SET status = 'verified' WHERE status = 'succeeded'")
    op.execute(f"ALTER TABLE post_jobs ADD CONSTRAINT post_jobs_status_check CHECK (status IN {JOB_STATUSES})")
    op.execute("""
        ALTER TABLE post_jobs
            ADD COLUMN due_at timestamptz,
            ADD COLUMN attempts integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
            ADD COLUMN claimed_by integer,
            ADD COLUMN claimed_until timestamptz,
            ADD COLUMN chat_id bigint,
            ADD COLUMN message_id bigint,
            ADD COLUMN message_url text CHECK (length(message_url) <= 2048),
            ADD COLUMN published_at timestamptz,
            ADD COLUMN verified_at timestamptz,
            ADD COLUMN failure_reason text CHECK (length(failure_reason) <= 1000),
            ADD COLUMN last_error text,
            ADD COLUMN checks_at timestamptz[] NOT NULL DEFAULT '{}',
            ADD COLUMN checks_done integer NOT NULL DEFAULT 0 CHECK (checks_done >= 0),
            ADD COLUMN check_failures integer NOT NULL DEFAULT 0 CHECK (check_failures >= 0)""")
    op.execute("UPDATE post_jobs SET due_at = execute_at")
    op.execute("""UPDATE post_jobs SET last_error = 'running when publication was introduced: the post may or may not be out'
                   WHERE status = 'needs_review'""")
    op.execute("""UPDATE post_jobs SET message_url = '', published_at = updated_at, verified_at = updated_at
                   WHERE status = 'verified'""")
    op.execute("UPDATE post_jobs SET failure_reason = 'failed before publication was tracked' WHERE status = 'failed'")
    op.execute("ALTER TABLE post_jobs ALTER COLUMN due_at SET NOT NULL")
    # What each status guarantees, whoever writes the row.
    op.execute("""ALTER TABLE post_jobs ADD CONSTRAINT post_jobs_publishing_is_claimed
                  CHECK (status <> 'publishing' OR (claimed_by IS NOT NULL AND claimed_until IS NOT NULL))""")
    op.execute("""ALTER TABLE post_jobs ADD CONSTRAINT post_jobs_published_has_message
                  CHECK (status NOT IN ('published', 'verified') OR (message_url IS NOT NULL AND published_at IS NOT NULL))""")
    op.execute("""ALTER TABLE post_jobs ADD CONSTRAINT post_jobs_verified_when_checked
                  CHECK ((status = 'verified') = (verified_at IS NOT NULL))""")
    op.execute("""ALTER TABLE post_jobs ADD CONSTRAINT post_jobs_failed_has_reason
                  CHECK (status <> 'failed' OR failure_reason IS NOT NULL)""")
    op.execute("""ALTER TABLE post_jobs ADD CONSTRAINT post_jobs_checks_within_plan
                  CHECK (checks_done <= cardinality(checks_at))""")
    op.execute("CREATE INDEX post_jobs_due ON post_jobs (due_at, id) WHERE status IN ('queued', 'published')")
    op.execute("CREATE INDEX post_jobs_publishing ON post_jobs (id) WHERE status = 'publishing'")
    op.execute("CREATE INDEX post_jobs_by_execute_at ON post_jobs (execute_at, id)")
    op.execute("CREATE INDEX targets_by_channel ON targets (channel_id)")


def downgrade() -> None:
    op.execute("DROP INDEX targets_by_channel")
    op.execute("DROP INDEX post_jobs_by_execute_at")
    op.execute("DROP INDEX post_jobs_publishing")
    op.execute("DROP INDEX post_jobs_due")
    for constraint in ("post_jobs_checks_within_plan", "post_jobs_failed_has_reason", "post_jobs_verified_when_checked",
                       "post_jobs_published_has_message", "post_jobs_publishing_is_claimed", "post_jobs_status_check"):
        op.execute(f"ALTER TABLE post_jobs DROP CONSTRAINT {constraint}")
    op.execute("UPDATE post_jobs SET status = 'running' WHERE status IN ('publishing', 'needs_review')")
    op.execute("UPDATE post_jobs SET status = 'succeeded' WHERE status IN ('published', 'verified')")
    op.execute("""ALTER TABLE post_jobs ADD CONSTRAINT post_jobs_status_check
                  CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled'))""")
    for column in ("due_at", "attempts", "claimed_by", "claimed_until", "chat_id", "message_id", "message_url",
                   "published_at", "verified_at", "failure_reason", "last_error", "checks_at", "checks_done",
                   "check_failures"):
        op.execute(f"ALTER TABLE post_jobs DROP COLUMN {column}")
    op.execute("UPDATE targets SET status = 'published' WHERE status = 'completed'")
    op.execute("ALTER TABLE targets DROP CONSTRAINT targets_status_check")
    op.execute("""ALTER TABLE targets ADD CONSTRAINT targets_status_check CHECK (status IN (
                  'pending', 'submitted', 'approving', 'approved', 'rejected', 'cancelled', 'published', 'failed'))""")
    op.execute("ALTER TABLE channels DROP COLUMN chat_id")
