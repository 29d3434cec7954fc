"""accounts, the double-entry ledger, escrows, hold decisions, deposit keys

The database itself keeps the ledger honest, whatever the code does:
- every ledger transaction's entries sum to zero (deferred constraint trigger);
- no account but external funding goes below zero (CHECK);
- an entry records the balance and version its account was left with
  (checked on insert), every balance change has such an entry (checked at
  commit), and entries are never updated or deleted;
- one escrow per target id, forever, and a closed escrow never changes.

Revision ID: 0001
Revises:
"""
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# SQLSTATEs our triggers raise; the store and tests match on them.
APPEND_ONLY = "PL001"
UNBALANCED = "PL002"
STALE_ENTRY = "PL003"
ESCROW_CLOSED = "PL004"
UNEXPLAINED = "PL005"


def upgrade() -> None:
    op.execute("""
        CREATE TABLE accounts (
            id bigserial PRIMARY KEY,
            kind text NOT NULL CHECK (kind IN ('wallet', 'escrow', 'platform_fee', 'external')),
            user_id uuid,
            currency text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
            balance bigint NOT NULL DEFAULT 0,
            version bigint NOT NULL DEFAULT 0 CHECK (version >= 0),
            created_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT accounts_owner CHECK ((kind = 'wallet') = (user_id IS NOT NULL)),
            CONSTRAINT accounts_balance_non_negative CHECK (kind = 'external' OR balance >= 0),
            CONSTRAINT accounts_one_per_owner UNIQUE NULLS NOT DISTINCT (kind, user_id, currency)
        )""")
    op.execute("""
        CREATE TABLE ledger_transactions (
            id uuid PRIMARY KEY,
            kind text NOT NULL CHECK (kind IN
                ('deposit', 'escrow_hold', 'escrow_refund', 'escrow_release', 'withdrawal')),
            reference text NOT NULL DEFAULT '',
            created_at timestamptz NOT NULL DEFAULT now()
        )""")
    op.execute("""
        CREATE TABLE ledger_entries (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            transaction_id uuid NOT NULL REFERENCES ledger_transactions (id),
            account_id bigint NOT NULL REFERENCES accounts (id),
            kind text NOT NULL CHECK (kind IN
                ('deposit', 'escrow_hold', 'escrow_refund', 'escrow_release', 'fee', 'withdrawal')),
            amount bigint NOT NULL CHECK (amount <> 0),
            balance_after bigint NOT NULL,
            account_version bigint NOT NULL CHECK (account_version > 0),
            created_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT ledger_entries_account_version UNIQUE (account_id, account_version)
        )""")
    op.execute("CREATE INDEX ledger_entries_transaction ON ledger_entries (transaction_id)")

    # Corrections are reversing entries: history is never rewritten.
    op.execute(f"""
        CREATE FUNCTION ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
                USING ERRCODE = '{APPEND_ONLY}';
        END $$""")
    for table in ("ledger_entries", "ledger_transactions"):
        op.execute(f"""CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table}
                       FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change()""")
        op.execute(f"""CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table}
                       FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change()""")

    # Checked at commit, once all legs of the transaction are written.
    op.execute(f"""
        CREATE FUNCTION ledger_check_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            tx uuid;
            total numeric;
            legs bigint;
        BEGIN
            IF TG_TABLE_NAME = 'ledger_entries' THEN
                tx := NEW.transaction_id;
            ELSE
                tx := NEW.id;
            END IF;
            SELECT coalesce(sum(amount), 0), count(*) INTO total, legs
              FROM ledger_entries WHERE transaction_id = tx;
            IF total <> 0 OR legs < 2 THEN
                RAISE EXCEPTION 'ledger transaction % is unbalanced: % legs sum to %', tx, legs, total
                    USING ERRCODE = '{UNBALANCED}';
            END IF;
            RETURN NULL;
        END $$""")
    for table in ("ledger_entries", "ledger_transactions"):
        op.execute(f"""CREATE CONSTRAINT TRIGGER {table}_balanced AFTER INSERT ON {table}
                       DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_check_balanced()""")

    # An entry must state what its account was left with by this very move.
    op.execute(f"""
        CREATE FUNCTION ledger_check_entry_state() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            acct accounts%ROWTYPE;
        BEGIN
            SELECT * INTO acct FROM accounts WHERE id = NEW.account_id;
            IF acct.balance <> NEW.balance_after OR acct.version <> NEW.account_version THEN
                RAISE EXCEPTION 'entry for account % says balance % version %, account has % version %',
                    NEW.account_id, NEW.balance_after, NEW.account_version, acct.balance, acct.version
                    USING ERRCODE = '{STALE_ENTRY}';
            END IF;
            RETURN NEW;
        END $$""")
    op.execute("""CREATE TRIGGER ledger_entries_state BEFORE INSERT ON ledger_entries
                  FOR EACH ROW EXECUTE FUNCTION ledger_check_entry_state()""")

    # The other direction, checked at commit: every balance change of an
    # account is explained by an entry stating that very balance and version.
    op.execute(f"""
        CREATE FUNCTION ledger_check_account_entry() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NOT EXISTS (SELECT 1 FROM ledger_entries
                            WHERE account_id = NEW.id AND account_version = NEW.version
                              AND balance_after = NEW.balance) THEN
                RAISE EXCEPTION 'account % changed to balance % version % without a ledger entry',
                    NEW.id, NEW.balance, NEW.version USING ERRCODE = '{UNEXPLAINED}';
            END IF;
            RETURN NULL;
        END $$""")
    op.execute("""CREATE CONSTRAINT TRIGGER accounts_change_has_entry AFTER UPDATE ON accounts
                  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
                  WHEN (NEW.balance IS DISTINCT FROM OLD.balance OR NEW.version IS DISTINCT FROM OLD.version)
                  EXECUTE FUNCTION ledger_check_account_entry()""")

    op.execute("""
        CREATE TABLE escrows (
            id uuid PRIMARY KEY,
            target_id uuid NOT NULL,
            decision_id uuid NOT NULL,
            advertiser_id uuid NOT NULL,
            publisher_id uuid NOT NULL,
            amount bigint NOT NULL CHECK (amount > 0),
            currency text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
            status text NOT NULL DEFAULT 'held' CHECK (status IN ('held', 'released', 'refunded')),
            fee bigint,
            -- Deferred: the escrow is written before the hold's ledger transaction,
            -- so the shared escrow account is locked only at the very end.
            hold_transaction_id uuid NOT NULL REFERENCES ledger_transactions (id) DEFERRABLE INITIALLY DEFERRED,
            close_transaction_id uuid REFERENCES ledger_transactions (id),
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            -- One escrow per target id, ever: no expiry, no partial index.
            CONSTRAINT escrows_one_per_target UNIQUE (target_id),
            CONSTRAINT escrows_fee CHECK ((status = 'released') = (fee IS NOT NULL) AND (fee IS NULL OR fee BETWEEN 0 AND amount)),
            CONSTRAINT escrows_closed_by CHECK ((status = 'held') = (close_transaction_id IS NULL))
        )""")
    op.execute("CREATE INDEX escrows_held_by_advertiser ON escrows (advertiser_id, currency) INCLUDE (amount) WHERE status = 'held'")
    op.execute("CREATE INDEX escrows_newest ON escrows (created_at DESC, id DESC)")
    op.execute(f"""
        CREATE FUNCTION escrow_refuse_reopen() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF OLD.status <> 'held' OR NEW.amount <> OLD.amount OR NEW.target_id <> OLD.target_id
               OR NEW.advertiser_id <> OLD.advertiser_id OR NEW.publisher_id <> OLD.publisher_id THEN
                RAISE EXCEPTION 'escrow % is % and cannot change', OLD.id, OLD.status
                    USING ERRCODE = '{ESCROW_CLOSED}';
            END IF;
            RETURN NEW;
        END $$""")
    op.execute("""CREATE TRIGGER escrows_close_once BEFORE UPDATE ON escrows
                  FOR EACH ROW EXECUTE FUNCTION escrow_refuse_reopen()""")
    op.execute("""CREATE TRIGGER escrows_no_delete BEFORE DELETE OR TRUNCATE ON escrows
                  FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change()""")

    # HoldEscrow's outcome per approve decision (docs/design.md saga rules 1, 3).
    op.execute("""
        CREATE TABLE escrow_decisions (
            decision_id uuid PRIMARY KEY,
            target_id uuid NOT NULL,
            outcome text NOT NULL CHECK (outcome IN ('held', 'insufficient_funds')),
            message text NOT NULL DEFAULT '',
            created_at timestamptz NOT NULL DEFAULT now()
        )""")

    # Deposit idempotency: the key is claimed and its result written in the
    # transaction that moves the money.
    op.execute("""
        CREATE TABLE deposit_keys (
            key text PRIMARY KEY CHECK (length(key) BETWEEN 1 AND 200),
            fingerprint text NOT NULL,
            user_id uuid NOT NULL,
            currency text NOT NULL,
            transaction_id uuid REFERENCES ledger_transactions (id) DEFERRABLE INITIALLY DEFERRED,
            balance_after bigint,
            held_after bigint,
            created_at timestamptz NOT NULL DEFAULT now()
        )""")


def downgrade() -> None:
    for table in ("deposit_keys", "escrow_decisions", "escrows", "ledger_entries", "ledger_transactions", "accounts"):
        op.execute(f"DROP TABLE IF EXISTS {table} CASCADE")
    for function in ("ledger_refuse_change", "ledger_check_balanced", "ledger_check_entry_state", "ledger_check_account_entry",
                     "escrow_refuse_reopen"):
        op.execute(f"DROP FUNCTION IF EXISTS {function}() CASCADE")
