"""HoldEscrow in one statement: the per-target lock, what the decision and
the target already have, and, when neither has anything, the guarded
wallet debit, the escrow account credit, the ledger transaction with its
entries, the decision's 'held' outcome and the escrow row.

Lock order, the same as every other move so none can deadlock: the target
(a try-lock: this statement never waits for it), then the advertiser's
wallet, then the shared escrow account last. The CTEs read each other's
output (credited needs debited, the inserts need credited), which is what
makes PostgreSQL run them in that order, and the shared account is held
only from its credit to the commit.

The lock is tried in the statement that reads, so the read's snapshot may
predate a hold of the same target that committed just before the lock was
granted; then the escrow's UNIQUE(target_id) or the decision's primary key
refuses the insert and the retried unit of work answers the winner's
result. A hold that finds the lock taken writes nothing, waits for the
lock on its own and runs again on a snapshot taken after it."""
import dataclasses

import sqlalchemy as sa

from common.db import UnitOfWork
from services.payments import domain
from services.payments.store.escrows import COLUMNS, EscrowRow, escrow_from

_HOLD = sa.text(f"""
    WITH target_lock AS (
        SELECT pg_try_advisory_xact_lock(hashtextextended('escrow-target:' || CAST(CAST(:target AS uuid) AS text), 0)) AS locked),
    recorded AS (
        SELECT CAST(target_id AS text) AS target_id, outcome, message FROM escrow_decisions
         WHERE decision_id = CAST(:decision AS uuid)),
    existing AS (
        SELECT {COLUMNS} FROM escrows WHERE target_id = CAST(:target AS uuid)),
    escrow_account AS (
        SELECT id FROM accounts WHERE kind = 'escrow' AND user_id IS NULL AND currency = :currency),
    go AS (
        SELECT (SELECT locked FROM target_lock) AND EXISTS (SELECT FROM escrow_account)
               AND NOT EXISTS (SELECT FROM recorded) AND NOT EXISTS (SELECT FROM existing) AS proceed),
    -- The only way money leaves a wallet: guarded, never read-modify-write.
    debited AS (
        UPDATE accounts SET balance = balance - CAST(:amount AS bigint), version = version + 1
         WHERE kind = 'wallet' AND user_id = CAST(:advertiser AS uuid) AND currency = :currency
           AND balance >= CAST(:amount AS bigint) AND (SELECT proceed FROM go)
        RETURNING id, balance, version),
    credited AS (
        UPDATE accounts SET balance = balance + CAST(:amount AS bigint), version = version + 1
         WHERE id = (SELECT id FROM escrow_account) AND EXISTS (SELECT FROM debited)
        RETURNING id, balance, version),
    tx AS (
        INSERT INTO ledger_transactions (id, kind, reference)
        SELECT CAST(:tx AS uuid), 'escrow_hold', CAST(CAST(:target AS uuid) AS text) FROM credited
        RETURNING id),
    entries AS (
        INSERT INTO ledger_entries (transaction_id, account_id, kind, amount, balance_after, account_version)
        SELECT tx.id, leg.id, 'escrow_hold', leg.amount, leg.balance, leg.version
          FROM tx, (SELECT id, -CAST(:amount AS bigint) AS amount, balance, version FROM debited
                    UNION ALL
                    SELECT id, CAST(:amount AS bigint), balance, version FROM credited) AS leg),
    decided AS (
        INSERT INTO escrow_decisions (decision_id, target_id, outcome)
        SELECT CAST(:decision AS uuid), CAST(:target AS uuid), 'held' FROM tx),
    created AS (
        INSERT INTO escrows (id, target_id, decision_id, advertiser_id, publisher_id, amount, currency,
                             hold_transaction_id)
        SELECT CAST(:id AS uuid), CAST(:target AS uuid), CAST(:decision AS uuid), CAST(:advertiser AS uuid),
               CAST(:publisher AS uuid), CAST(:amount AS bigint), :currency, tx.id FROM tx
        RETURNING {COLUMNS})
    SELECT (SELECT locked FROM target_lock) AS locked, (SELECT proceed FROM go) AS proceeded,
           EXISTS (SELECT FROM escrow_account) AS escrow_account_open,
           r.target_id AS recorded_target, r.outcome AS recorded_outcome, r.message AS recorded_message, e.*
      FROM (SELECT 1) AS one
      LEFT JOIN recorded AS r ON true
      LEFT JOIN (SELECT * FROM existing UNION ALL SELECT * FROM created) AS e ON true""")

_WAIT_FOR_TARGET = sa.text(
    "SELECT pg_advisory_xact_lock(hashtextextended('escrow-target:' || CAST(CAST(:target AS uuid) AS text), 0))")


@dataclasses.dataclass(frozen=True)
class HoldAttempt:
    """What one run of the hold statement found and did. When `proceeded`
    is false nothing was written and `existing` is the target's escrow;
    when true, `held` is the new escrow, or None if the wallet lacked the
    money (nothing moved)."""
    locked: bool
    escrow_account_open: bool
    proceeded: bool
    recorded: domain.RecordedHold | None
    existing: EscrowRow | None
    held: EscrowRow | None


async def attempt(uow: UnitOfWork, terms: domain.HoldTerms, escrow_id: str, tx: str) -> HoldAttempt:
    row = (await uow.execute(_HOLD, {
        "target": terms.target_id, "decision": terms.decision_id, "advertiser": terms.advertiser_id,
        "publisher": terms.publisher_id, "amount": terms.amount, "currency": terms.currency,
        "id": escrow_id, "tx": tx})).one()
    recorded = None if row.recorded_outcome is None else domain.RecordedHold(
        row.recorded_target, row.recorded_outcome, row.recorded_message)
    escrow = escrow_from(row)
    return HoldAttempt(row.locked, row.escrow_account_open, row.proceeded, recorded,
                       None if row.proceeded else escrow, escrow if row.proceeded else None)


async def wait_for_target(uow: UnitOfWork, target_id: str) -> None:
    """Queues behind the hold of the same target that holds the lock."""
    await uow.execute(_WAIT_FOR_TARGET, {"target": target_id})
