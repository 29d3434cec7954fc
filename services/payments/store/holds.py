"""HoldEscrow in one statement: the per-target lock, what the decision and
the target already have, and, when neither has anything, the whole
decision: either the guarded wallet debit, the escrow's own account opened
holding the amount, the ledger transaction with its entries, the 'held'
outcome and the escrow row; or the 'insufficient_funds' outcome with the
balance it was refused on (docs/design.md saga rules 1, 3).

Lock order (store/ledger.py): the target (a try-lock: this statement never
waits for it), then the advertiser's wallet, then rows only this target's
moves ever touch (its escrow account, its escrow row). No shared row: holds
of different targets on different wallets never wait for each other. The
CTEs read each other's output (the debit needs the locked wallet, the
account needs the debit, the inserts need the transaction), which is what
makes PostgreSQL run them in that order.

The lock is tried in the statement that reads, so the read's snapshot may
predate a hold of the same target that committed just before the lock was
granted; then the escrow account's or the escrow's UNIQUE(target) or the
decision's primary key refuses the insert, and the use case runs the
statement again on a fresh snapshot, which answers the winner's result. A
hold that finds the lock taken writes nothing; the use case then waits for
the lock in a transaction and runs the statement again under it."""
import dataclasses

import sqlalchemy as sa

from common import steps
from common.db import UnitOfWork
from services.payments import domain
from services.payments.store.escrows import COLUMNS, EscrowRow, escrow_from

# 'held', or 'refused' with the reason and the balance it was refused on.
_RECORD_OUTCOME = steps.record(
    "(SELECT held FROM moved WHERE (SELECT proceed FROM go)) AS m",
    "CASE WHEN m.held THEN 'held' ELSE 'refused' END",
    """CASE WHEN m.held THEN CAST('{}' AS jsonb)
            ELSE jsonb_build_object('code', CAST(:refusal_code AS text), 'message',
                                    format(:refusal, coalesce((SELECT balance FROM wallet), 0),
                                           CAST(:amount AS bigint))) END""",
    "CAST(:target AS uuid)")

_HOLD = sa.text(f"""
    WITH target_lock AS (
        SELECT pg_try_advisory_xact_lock(hashtextextended('escrow-target:' || CAST(CAST(:target AS uuid) AS text), 0)) AS locked),
    {steps.PRIOR},
    existing AS (
        SELECT {COLUMNS} FROM escrows WHERE target_id = CAST(:target AS uuid)),
    go AS (
        SELECT (SELECT locked FROM target_lock) AND {steps.NO_PRIOR}
               AND NOT EXISTS (SELECT FROM existing) AS proceed),
    -- Locked before the debit, at its newest version, so that a refusal
    -- states the balance it was refused on.
    wallet AS (
        SELECT id, balance FROM accounts
         WHERE kind = 'wallet' AND user_id = CAST(:advertiser AS uuid) AND currency = :currency
           AND (SELECT proceed FROM go)
        FOR NO KEY UPDATE),
    -- The only way money leaves a wallet: guarded, never read-modify-write.
    debited AS (
        UPDATE accounts SET balance = balance - CAST(:amount AS bigint), version = version + 1
         WHERE id = (SELECT id FROM wallet) AND balance >= CAST(:amount AS bigint)
        RETURNING id, balance, version),
    -- The escrow's own account, opened holding the amount (version 1).
    opened AS (
        INSERT INTO accounts (kind, escrow_target_id, currency, balance, version)
        SELECT 'escrow', CAST(:target AS uuid), :currency, CAST(:amount AS bigint), 1 FROM debited
        RETURNING id, balance, version),
    tx AS (
        INSERT INTO ledger_transactions (id, kind, reference)
        SELECT CAST(:tx AS uuid), 'escrow_hold', CAST(CAST(:target AS uuid) AS text) FROM opened
        RETURNING id),
    entries AS (
        INSERT INTO ledger_entries (transaction_id, account_id, kind, amount, balance_after, account_version)
        SELECT tx.id, leg.id, 'escrow_hold', leg.amount, leg.balance, leg.version
          FROM tx, (SELECT id, -CAST(:amount AS bigint) AS amount, balance, version FROM debited
                    UNION ALL
                    SELECT id, CAST(:amount AS bigint), balance, version FROM opened) AS leg),
    moved AS (
        SELECT EXISTS (SELECT FROM tx) AS held),
    step_record AS ({_RECORD_OUTCOME}),
    created AS (
        INSERT INTO escrows (id, target_id, decision_id, advertiser_id, publisher_id, amount, currency,
                             hold_transaction_id)
        SELECT CAST(:id AS uuid), CAST(:target AS uuid), CAST(:decision_id AS uuid), CAST(:advertiser AS uuid),
               CAST(:publisher AS uuid), CAST(:amount AS bigint), :currency, tx.id FROM tx
        RETURNING {COLUMNS})
    SELECT (SELECT locked FROM target_lock) AS locked, {steps.RETURNS}, e.*
      FROM (SELECT) AS one
      LEFT JOIN prior ON true
      LEFT JOIN (SELECT * FROM existing UNION ALL SELECT * FROM created) AS e ON true""")

_WAIT_FOR_TARGET = sa.text(
    "SELECT pg_advisory_xact_lock(hashtextextended('escrow-target:' || CAST(CAST(:target AS uuid) AS text), 0))")


@dataclasses.dataclass(frozen=True)
class HoldAttempt:
    """What one run of the hold statement found or decided: the step's
    record for the decision and the target's escrow, each either found or
    written just now. Both are None only when the lock was taken by another
    hold of the target (nothing was written)."""
    locked: bool
    recorded: steps.StepRecord | None
    escrow: EscrowRow | None


def hold_params(terms: domain.HoldTerms, escrow_id: str, tx: str) -> dict:
    """The hold statement's parameters (the benchmark sends the same)."""
    return {"target": terms.target_id, "decision_id": terms.decision_id, "step": domain.HOLD_STEP,
            "advertiser": terms.advertiser_id, "publisher": terms.publisher_id, "amount": terms.amount,
            "currency": terms.currency, "id": escrow_id, "tx": tx, "refusal": domain.INSUFFICIENT_FUNDS,
            "refusal_code": domain.InsufficientFunds.code}


async def attempt(uow: UnitOfWork, terms: domain.HoldTerms, escrow_id: str, tx: str) -> HoldAttempt:
    row = (await uow.execute(_HOLD, hold_params(terms, escrow_id, tx))).one()
    return HoldAttempt(row.locked, steps.record_of(row, terms.target_id), escrow_from(row))


async def wait_for_target(uow: UnitOfWork, target_id: str) -> None:
    """Queues behind the hold of the same target that holds the lock; the
    lock is then this transaction's until it ends."""
    await uow.execute(_WAIT_FOR_TARGET, {"target": target_id})
