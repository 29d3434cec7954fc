"""Channel ownership and consent (docs/design.md, "Who owns a channel, and
who agrees").

- `telegram_accounts`: a user's bound Telegram account, unique both ways;
  `telegram_link_codes`: the single-use codes `/start` consumes;
  `bot_updates`: every update the bot handled, so one delivered again
  changes nothing, and the answer it owes until sent.
- channels: `verified_at` (ownership proven at listing or resubmit),
  `auto_accept`, status `suspended`; one live listing per chat and per
  handle in any case (partial unique indexes); a live listing that is not
  suspended is verified (CHECK).
- post jobs: `awaiting_publisher`, `declined`, `expired`, with `accept_by`,
  `answered_at`, `decline_reason`; the order message the bot sent the owner
  (`order_chat_id`, `order_message_id`, `order_shown`: the status it shows);
  `owner_telegram_user_id`: whose ownership was checked at publication;
  `posted_before_ownership`: a post out (or perhaps out) before this
  migration, which no owner's account was checked for.
- targets: `declined`.

Listings made before ownership existed are trusted by no one: duplicates of
a chat or a handle (any case) but the oldest become rejected, and every
other live listing suspended until its owner resubmits (which proves
ownership).

Revision ID: 0008
Revises: 0007
"""
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

LIVE = "('pending', 'approved', 'suspended')"
JOB_STATUSES = ("('awaiting_publisher', 'queued', 'publishing', 'published', 'verified', 'cancelled', 'failed',"
                " 'needs_review', 'declined', 'expired')")
TARGET_STATUSES = ("('pending', 'submitted', 'approving', 'approved', 'rejected', 'cancelled', 'published',"
                   " 'failed', 'completed', 'declined')")
UNVERIFIED = "listed before channel ownership was verified: resubmit to verify"
DUPLICATE = "a duplicate listing of a chat or handle listed by someone else"


def upgrade() -> None:
    op.execute("""
        CREATE TABLE telegram_accounts (
            user_id uuid PRIMARY KEY,
            telegram_user_id bigint NOT NULL CONSTRAINT telegram_accounts_one_user_per_account UNIQUE,
            username text CHECK (length(username) <= 64),
            linked_at timestamptz NOT NULL DEFAULT now())""")
    op.execute("""
        CREATE TABLE telegram_link_codes (
            code text PRIMARY KEY CHECK (code ~ '^[A-Za-z0-9_-]{16,64}$'),
            user_id uuid NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            expires_at timestamptz NOT NULL,
            used_at timestamptz,
            used_by bigint,
            CHECK ((used_at IS NULL) = (used_by IS NULL)))""")
    op.execute("CREATE INDEX telegram_link_codes_expiry ON telegram_link_codes (expires_at)")
    op.execute("""
        CREATE TABLE bot_updates (
            update_id bigint PRIMARY KEY,
            kind text NOT NULL,
            handled_at timestamptz NOT NULL DEFAULT now(),
            answer jsonb,
            answered_at timestamptz)""")
    op.execute("CREATE INDEX bot_updates_unanswered ON bot_updates (update_id) WHERE answer IS NOT NULL AND answered_at IS NULL")

    op.execute("""
        ALTER TABLE channels
            ADD COLUMN verified_at timestamptz,
            ADD COLUMN auto_accept boolean NOT NULL DEFAULT false""")
    op.execute("ALTER TABLE channels DROP CONSTRAINT channels_status_check")
    op.execute("ALTER TABLE channels ADD CONSTRAINT channels_status_check"
               " CHECK (status IN ('pending', 'approved', 'rejected', 'suspended'))")
    # Old duplicates: of each chat and each handle (any case), one live
    # listing stays: an approved one with its chat known first (it may have
    # bookings), then the oldest.
    for key, known in (("chat_id", "chat_id IS NOT NULL"), ("lower(handle)", "true")):
        op.execute(f"""
            UPDATE channels c SET status = 'rejected', rejection_reason = '{DUPLICATE}', updated_at = now()
              FROM (SELECT id, row_number() OVER (
                               PARTITION BY {key}
                               ORDER BY status = 'approved' DESC, chat_id IS NOT NULL DESC, created_at, id) AS n
                      FROM channels WHERE status IN {LIVE} AND {known}) d
             WHERE c.id = d.id AND d.n > 1""")
    op.execute(f"""
        UPDATE channels SET status = 'suspended', rejection_reason = '{UNVERIFIED}', updated_at = now()
         WHERE status IN ('pending', 'approved') AND verified_at IS NULL""")
    op.execute(f"CREATE UNIQUE INDEX channels_one_live_per_chat ON channels (chat_id) WHERE status IN {LIVE}")
    op.execute(f"CREATE UNIQUE INDEX channels_one_live_per_handle ON channels (lower(handle)) WHERE status IN {LIVE}")
    op.execute("""ALTER TABLE channels ADD CONSTRAINT channels_listed_is_verified
                  CHECK (status NOT IN ('pending', 'approved') OR (verified_at IS NOT NULL AND chat_id IS NOT NULL))""")
    op.execute("CREATE INDEX channels_by_owner ON channels (owner_id)")

    op.execute("ALTER TABLE targets DROP CONSTRAINT targets_status_check")
    op.execute(f"ALTER TABLE targets ADD CONSTRAINT targets_status_check CHECK (status IN {TARGET_STATUSES})")
    op.execute("ALTER TABLE post_jobs DROP CONSTRAINT post_jobs_status_check")
    op.execute(f"ALTER TABLE post_jobs ADD CONSTRAINT post_jobs_status_check CHECK (status IN {JOB_STATUSES})")
    op.execute("""
        ALTER TABLE post_jobs
            ADD COLUMN accept_by timestamptz,
            ADD COLUMN answered_at timestamptz,
            ADD COLUMN decline_reason text CHECK (length(decline_reason) <= 1000),
            ADD COLUMN order_chat_id bigint,
            ADD COLUMN order_message_id bigint,
            ADD COLUMN order_shown text,
            ADD COLUMN owner_telegram_user_id bigint,
            ADD COLUMN posted_before_ownership boolean NOT NULL DEFAULT false""")
    # Posts out (or perhaps out) before ownership was checked: adtech verify
    # cannot hold them to an owner's account.
    op.execute("""UPDATE post_jobs SET posted_before_ownership = true
                   WHERE message_id IS NOT NULL OR status IN ('publishing', 'published', 'verified', 'needs_review')""")
    op.execute("""ALTER TABLE post_jobs ADD CONSTRAINT post_jobs_awaiting_has_deadline
                  CHECK (status <> 'awaiting_publisher' OR accept_by IS NOT NULL)""")
    op.execute("""ALTER TABLE post_jobs ADD CONSTRAINT post_jobs_declined_has_reason
                  CHECK (status <> 'declined' OR (decline_reason IS NOT NULL AND answered_at IS NOT NULL))""")
    op.execute("CREATE INDEX post_jobs_awaiting ON post_jobs (accept_by, id) WHERE status = 'awaiting_publisher'")
    # Orders the bot has yet to send, or whose message shows an older status.
    op.execute("""CREATE INDEX post_jobs_orders_to_show ON post_jobs (updated_at, id)
                  WHERE accept_by IS NOT NULL AND order_shown IS DISTINCT FROM status""")


def downgrade() -> None:
    op.execute("DROP INDEX post_jobs_orders_to_show")
    op.execute("DROP INDEX post_jobs_awaiting")
    op.execute("ALTER TABLE post_jobs DROP CONSTRAINT post_jobs_declined_has_reason")
    op.execute("ALTER TABLE post_jobs DROP CONSTRAINT post_jobs_awaiting_has_deadline")
    op.execute("UPDATE post_jobs SET status = 'cancelled' WHERE status IN ('awaiting_publisher', 'declined', 'expired')")
    for column in ("accept_by", "answered_at", "decline_reason", "order_chat_id", "order_message_id", "order_shown",
                   "owner_telegram_user_id", "posted_before_ownership"):
        op.execute(f"ALTER TABLE post_jobs DROP COLUMN {column}")
    op.execute("ALTER TABLE post_jobs DROP CONSTRAINT post_jobs_status_check")
    op.execute("""ALTER TABLE post_jobs ADD CONSTRAINT post_jobs_status_check CHECK (status IN
                  ('queued', 'publishing', 'published', 'verified', 'cancelled', 'failed', 'needs_review'))""")
    op.execute("UPDATE targets SET status = 'cancelled' WHERE status = 'declined'")
    op.execute("ALTER TABLE targets DROP CONSTRAINT targets_status_check")
    op.execute("""ALTER TABLE targets ADD CONSTRAINT targets_status_check CHECK (status IN ('pending', 'submitted',
                  'approving', 'approved', 'rejected', 'cancelled', 'published', 'failed', 'completed'))""")
    op.execute("DROP INDEX channels_by_owner")
    op.execute("ALTER TABLE channels DROP CONSTRAINT channels_listed_is_verified")
    op.execute("DROP INDEX channels_one_live_per_handle")
    op.execute("DROP INDEX channels_one_live_per_chat")
    op.execute("UPDATE channels SET status = 'rejected' WHERE status = 'suspended'")
    op.execute("ALTER TABLE channels DROP CONSTRAINT channels_status_check")
    op.execute("ALTER TABLE channels ADD CONSTRAINT channels_status_check"
               " CHECK (status IN ('pending', 'approved', 'rejected'))")
    op.execute("ALTER TABLE channels DROP COLUMN auto_accept, DROP COLUMN verified_at")
    op.execute("DROP TABLE bot_updates")
    op.execute("DROP TABLE telegram_link_codes")
    op.execute("DROP TABLE telegram_accounts")
