"""escrow money in one ledger account per escrow; platform fee and external
funding split into shards

Until now every hold, release and refund of a currency updated the one
shared escrow account row, every release the one platform fee row and
every deposit the one external funding row: all of them queued on those
row locks (docs/design.md "No global hot row on the money path"). From here:
- an escrow's money sits in its own account (kind 'escrow', keyed by the
  escrow's target id; one per target, ever, and only for a target that has
  an escrow), which no other escrow's moves touch;
- platform fee and external funding accounts are numbered shards of their
  currency; a move picks one, and their sum is the currency's figure. The
  existing rows become shard 0 and keep their balances and history.

The database keeps every invariant of 0001 and gains two:
- an account opened with a balance (an escrow's own account is opened
  holding the amount) must have an entry stating it, like every change;
- the old shared escrow account of a currency is retired: this migration
  moves its money, escrow by escrow, into the escrows' own accounts with
  balanced 'escrow_transfer' transactions (history is appended to, never
  rewritten), and from then on it may hold nothing.

Revision ID: 0002
Revises: 0001
"""
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TRANSACTION_KINDS = ("deposit", "escrow_hold", "escrow_refund", "escrow_release", "withdrawal")
ENTRY_KINDS = ("deposit", "escrow_hold", "escrow_refund", "escrow_release", "fee", "withdrawal")
# Moving an escrow's money from the retired shared account into its own.
TRANSFER = "escrow_transfer"
# Raised when the shared escrow accounts do not hold exactly the held
# escrows: the ledger was already broken, and this migration refuses to
# guess which side is right.
UNCOVERED = "PL006"


def _kinds(values) -> str:
    return ", ".join(f"'{v}'" for v in values)


def upgrade() -> None:
    op.execute("""
        ALTER TABLE accounts
            ADD COLUMN escrow_target_id uuid,
            ADD COLUMN shard smallint NOT NULL DEFAULT 0,
            ADD CONSTRAINT accounts_escrow_owner CHECK (escrow_target_id IS NULL OR kind = 'escrow'),
            ADD CONSTRAINT accounts_shard CHECK (shard >= 0 AND (shard = 0 OR kind IN ('platform_fee', 'external'))),
            DROP CONSTRAINT accounts_one_per_owner,
            ADD CONSTRAINT accounts_one_per_owner UNIQUE NULLS NOT DISTINCT (kind, user_id, escrow_target_id, shard, currency),
            -- One account per escrow, ever (escrows: one per target, ever).
            ADD CONSTRAINT accounts_one_per_escrow UNIQUE (escrow_target_id),
            -- Deferred: a hold opens the account before it writes the escrow row.
            ADD CONSTRAINT accounts_escrow_target FOREIGN KEY (escrow_target_id) REFERENCES escrows (target_id)
                DEFERRABLE INITIALLY DEFERRED""")

    for table, kinds in (("ledger_transactions", TRANSACTION_KINDS), ("ledger_entries", ENTRY_KINDS)):
        op.execute(f"""
            ALTER TABLE {table} DROP CONSTRAINT {table}_kind_check,
                ADD CONSTRAINT {table}_kind_check CHECK (kind IN ({_kinds(kinds + (TRANSFER,))}))""")

    # 0001 checks that every balance change has an entry; an account may now
    # also be opened with a balance, which needs one just the same.
    op.execute("""CREATE CONSTRAINT TRIGGER accounts_opening_has_entry AFTER INSERT ON accounts
                  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
                  WHEN (NEW.balance <> 0 OR NEW.version <> 0)
                  EXECUTE FUNCTION ledger_check_account_entry()""")

    # The money of each held escrow moves out of its currency's shared escrow
    # account into the escrow's own, one balanced transaction per escrow; the
    # shared account's entries chain version by version as for any move.
    op.execute(f"""
        DO $$
        DECLARE
            held record;
            shared accounts%ROWTYPE;
            own bigint;
            tx uuid;
        BEGIN
            FOR held IN SELECT target_id, amount, currency FROM escrows WHERE status = 'held'
                         ORDER BY currency, created_at, id LOOP
                UPDATE accounts SET balance = balance - held.amount, version = version + 1
                 WHERE kind = 'escrow' AND escrow_target_id IS NULL AND currency = held.currency
                   AND balance >= held.amount
                RETURNING * INTO shared;
                IF NOT FOUND THEN
                    RAISE EXCEPTION 'the % escrow account does not cover the held escrow of target %',
                        held.currency, held.target_id USING ERRCODE = '{UNCOVERED}';
                END IF;
                INSERT INTO accounts (kind, escrow_target_id, currency, balance, version)
                VALUES ('escrow', held.target_id, held.currency, held.amount, 1) RETURNING id INTO own;
                tx := gen_random_uuid();
                INSERT INTO ledger_transactions (id, kind, reference)
                VALUES (tx, '{TRANSFER}', CAST(held.target_id AS text));
                INSERT INTO ledger_entries (transaction_id, account_id, kind, amount, balance_after, account_version)
                VALUES (tx, shared.id, '{TRANSFER}', -held.amount, shared.balance, shared.version),
                       (tx, own, '{TRANSFER}', held.amount, held.amount, 1);
            END LOOP;
            SELECT * INTO shared FROM accounts
             WHERE kind = 'escrow' AND escrow_target_id IS NULL AND balance <> 0 LIMIT 1;
            IF FOUND THEN
                RAISE EXCEPTION 'the % escrow account still holds % that no held escrow accounts for',
                    shared.currency, shared.balance USING ERRCODE = '{UNCOVERED}';
            END IF;
        END $$""")

    # The moves above are checked now (balanced, explained), before the
    # table changes again: ALTER TABLE refuses pending trigger events.
    op.execute("SET CONSTRAINTS ALL IMMEDIATE")
    op.execute("""ALTER TABLE accounts ADD CONSTRAINT accounts_shared_escrow_retired
                  CHECK (kind <> 'escrow' OR escrow_target_id IS NOT NULL OR balance = 0)""")


def downgrade() -> None:
    # 0001's code credits the one shared escrow account of a currency; going
    # back would mean moving every escrow's money back into it and then
    # deleting accounts that ledger entries refer to. The ledger is
    # append-only, so this step is one-way.
    raise NotImplementedError("0002 moved escrow money into per-escrow accounts; it cannot be undone")
