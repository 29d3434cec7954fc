"""publisher payouts: withdrawals and a pending-payouts account per user

A publisher asks to withdraw; the amount moves at once from the wallet into
the user's own pending-payouts account (kind 'pending_payout', one per user
and currency: no row every withdrawal of the platform must lock), in a
'withdrawal' transaction. An admin completes it (pending-payouts → external
funding, a 'payout' transaction) or rejects it (pending-payouts → wallet, a
'withdrawal_reversal' transaction whose wallet entry is a positive
'withdrawal').

The database keeps it honest, whatever the code does:
- amount > 0; status pending | paid | rejected; an external reference iff
  paid, a reason iff rejected, a closing transaction iff not pending;
- one withdrawal per (user, Idempotency-Key);
- a paid or rejected withdrawal never changes, and none is ever deleted.
The ledger's rules of 0001/0002 (zero-sum, no negative balance but external
funding, every balance change explained by an entry) cover the new accounts.

Existing rows are kept; deposit keys gain the pending payout they answered
with (0 for the keys before payouts existed, when there was none).

Revision ID: 0004
Revises: 0003
"""
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

ACCOUNT_KINDS = ("wallet", "escrow", "platform_fee", "external", "pending_payout")
TRANSACTION_KINDS = ("deposit", "escrow_hold", "escrow_refund", "escrow_release", "withdrawal", "escrow_transfer",
                     "payout", "withdrawal_reversal")
ENTRY_KINDS = ("deposit", "escrow_hold", "escrow_refund", "escrow_release", "fee", "withdrawal", "escrow_transfer",
               "payout")
# SQLSTATE raised when a closed withdrawal would change.
WITHDRAWAL_CLOSED = "PL007"


def _kinds(values) -> str:
    return ", ".join(f"'{v}'" for v in values)


def upgrade() -> None:
    op.execute(f"""
        ALTER TABLE accounts
            DROP CONSTRAINT accounts_kind_check,
            ADD CONSTRAINT accounts_kind_check CHECK (kind IN ({_kinds(ACCOUNT_KINDS)})),
            DROP CONSTRAINT accounts_owner,
            ADD CONSTRAINT accounts_owner CHECK ((kind IN ('wallet', 'pending_payout')) = (user_id IS NOT NULL))""")
    for table, kinds in (("ledger_transactions", TRANSACTION_KINDS), ("ledger_entries", ENTRY_KINDS)):
        op.execute(f"""
            ALTER TABLE {table} DROP CONSTRAINT {table}_kind_check,
                ADD CONSTRAINT {table}_kind_check CHECK (kind IN ({_kinds(kinds)}))""")

    op.execute("""
        CREATE TABLE withdrawals (
            id uuid PRIMARY KEY,
            user_id uuid NOT NULL,
            idempotency_key text NOT NULL CHECK (length(idempotency_key) BETWEEN 1 AND 200),
            amount bigint NOT NULL CHECK (amount > 0),
            currency text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
            destination text NOT NULL CHECK (length(destination) BETWEEN 1 AND 500),
            status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'paid', 'rejected')),
            external_reference text CHECK (length(external_reference) BETWEEN 1 AND 500),
            reason text CHECK (length(reason) BETWEEN 1 AND 1000),
            -- Deferred: the withdrawal row (the key's claim) is written before
            -- the ledger transaction that moves its money.
            request_transaction_id uuid NOT NULL REFERENCES ledger_transactions (id) DEFERRABLE INITIALLY DEFERRED,
            close_transaction_id uuid REFERENCES ledger_transactions (id) DEFERRABLE INITIALLY DEFERRED,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT withdrawals_one_per_key UNIQUE (user_id, idempotency_key),
            CONSTRAINT withdrawals_paid_has_reference CHECK ((status = 'paid') = (external_reference IS NOT NULL)),
            CONSTRAINT withdrawals_rejected_has_reason CHECK ((status = 'rejected') = (reason IS NOT NULL)),
            CONSTRAINT withdrawals_closed_by CHECK ((status = 'pending') = (close_transaction_id IS NULL))
        )""")
    op.execute("CREATE INDEX withdrawals_by_user ON withdrawals (user_id, created_at DESC, id DESC)")
    op.execute("CREATE INDEX withdrawals_by_status ON withdrawals (status, created_at DESC, id DESC)")
    op.execute("CREATE INDEX withdrawals_newest ON withdrawals (created_at DESC, id DESC)")
    op.execute(f"""
        CREATE FUNCTION withdrawal_refuse_reopen() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF OLD.status <> 'pending' OR NEW.amount <> OLD.amount OR NEW.user_id <> OLD.user_id
               OR NEW.currency <> OLD.currency OR NEW.destination <> OLD.destination
               OR NEW.idempotency_key <> OLD.idempotency_key
               OR NEW.request_transaction_id <> OLD.request_transaction_id THEN
                RAISE EXCEPTION 'withdrawal % is % and cannot change', OLD.id, OLD.status
                    USING ERRCODE = '{WITHDRAWAL_CLOSED}';
            END IF;
            RETURN NEW;
        END $$""")
    op.execute("""CREATE TRIGGER withdrawals_close_once BEFORE UPDATE ON withdrawals
                  FOR EACH ROW EXECUTE FUNCTION withdrawal_refuse_reopen()""")
    op.execute("""CREATE TRIGGER withdrawals_no_delete BEFORE DELETE OR TRUNCATE ON withdrawals
                  FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change()""")

    op.execute("ALTER TABLE deposit_keys ADD COLUMN pending_payout_after bigint")


def downgrade() -> None:
    op.execute("ALTER TABLE deposit_keys DROP COLUMN pending_payout_after")
    op.execute("DROP TABLE withdrawals")
    op.execute("DROP FUNCTION withdrawal_refuse_reopen()")
    for table, kinds in (("ledger_transactions", TRANSACTION_KINDS[:6]), ("ledger_entries", ENTRY_KINDS[:7])):
        op.execute(f"""
            ALTER TABLE {table} DROP CONSTRAINT {table}_kind_check,
                ADD CONSTRAINT {table}_kind_check CHECK (kind IN ({_kinds(kinds)}))""")
    op.execute(f"""
        ALTER TABLE accounts
            DROP CONSTRAINT accounts_kind_check,
            ADD CONSTRAINT accounts_kind_check CHECK (kind IN ({_kinds(ACCOUNT_KINDS[:4])})),
            DROP CONSTRAINT accounts_owner,
            ADD CONSTRAINT accounts_owner CHECK ((kind = 'wallet') = (user_id IS NOT NULL))""")
