"""HoldEscrow in one statement, for one hold or for a set of holds asked
for at the same time (Payments.hold_escrow gathers them), each decided as
if alone: the per-target lock, what the decision and the target already
have, and, when neither has anything, the whole decision: either the
guarded wallet debit, the escrow's own account opened holding the amount,
the ledger transaction with its entries, the 'held' outcome and the escrow
row; or the 'insufficient_funds' outcome with the balance it was refused
on (docs/design.md saga rules 1, 3).

Lock order (store/ledger.py): the targets (try-locks: this statement never
waits for them), then the advertisers' wallets in (owner, currency) order
(skipped when another move holds one: the hold is `busy`, and runs again
alone, waiting), then rows only these targets' moves ever touch (their
escrow accounts and escrow rows). No shared row: holds of different
targets on different wallets never wait for each other. The CTEs read each
other's output (the debit needs the locked wallet, the account needs the
debit, the inserts need the transaction), which is what makes PostgreSQL
run them in that order.

The lock is tried in the statement that reads, so the read's snapshot may
predate a hold of the same target that committed just before the lock was
granted; then the escrow account's or the escrow's UNIQUE(target) or the
decision's primary key refuses the insert (the whole statement), and each
hold's use case runs again on a fresh snapshot, which answers the winner's
result. A hold that finds the lock taken writes nothing; its use case then
waits for the lock in a transaction and runs the statement again under it."""
import dataclasses
import uuid

import sqlalchemy as sa

from common import steps
from common.db import UnitOfWork
from services.payments import domain
from services.payments.store import ledger
from services.payments.store.escrows import COLUMNS, EscrowRow, escrow_from

_FIELDS = [field.name for field in dataclasses.fields(EscrowRow)]
_ESCROW = ", ".join(f"e.{name}" for name in _FIELDS)
_KNOWN_ESCROW = ", ".join(["k.n"] + [f"k.{name}" for name in _FIELDS])

# The holds asked for, in the order asked (`n`); never two that share a
# key (`keys_of`: `attempt` refuses such a set).
#
# Every lookup is a LATERAL subquery per hold, fenced (OFFSET 0) so the
# planner keeps it a probe of the unique index: the plan is built once per
# session and kept (common/db.py), often while the tables are still small,
# and a join planned then as a scan of the whole table would stay one.
_HOLDS_TEMPLATE = f"""
    WITH asked AS MATERIALIZED (
        SELECT a.*, pg_try_advisory_xact_lock(hashtextextended('escrow-target:' || CAST(a.target_id AS text), 0))
                    AS locked
          FROM unnest(CAST(:targets AS uuid[]), CAST(:decisions AS uuid[]), CAST(:advertisers AS uuid[]),
                      CAST(:publishers AS uuid[]), CAST(:amounts AS bigint[]), CAST(:currencies AS text[]),
                      CAST(:escrow_ids AS uuid[]), CAST(:txs AS uuid[]))
               WITH ORDINALITY AS a(target_id, decision_id, advertiser_id, publisher_id, amount, currency,
                                    escrow_id, tx, n)),
    -- What the decision and the target already have: the step's record, the escrow.
    known AS MATERIALIZED (
        SELECT a.n, p.outcome AS recorded_outcome, p.detail AS recorded_detail, p.target_id AS recorded_for, e.*
          FROM asked AS a
          LEFT JOIN LATERAL (SELECT outcome, detail, target_id FROM saga_steps
                              WHERE decision_id = a.decision_id AND step = :step OFFSET 0) AS p ON true
          LEFT JOIN LATERAL (SELECT {COLUMNS} FROM escrows WHERE escrows.target_id = a.target_id OFFSET 0)
                    AS e ON true),
    -- The holds to decide now, in the order their wallets are locked.
    go AS MATERIALIZED (
        SELECT a.* FROM asked AS a JOIN known AS k USING (n)
         WHERE a.locked AND k.recorded_outcome IS NULL AND k.id IS NULL
         ORDER BY a.advertiser_id, a.currency),
    -- Each wallet locked before its debit, at its newest version, so that
    -- a refusal states the balance it was refused on; in the order of
    -- `go`, by (owner, currency), so two statements never wait for each
    -- other in a circle.
    wallet AS MATERIALIZED (
        SELECT g.n, w.id, w.balance FROM go AS g
         CROSS JOIN LATERAL (SELECT id, balance FROM accounts
                              WHERE kind = 'wallet' AND user_id = g.advertiser_id AND currency = g.currency
                             {{wallet_lock}}) AS w),
    -- Holds whose wallet another move holds now (skipped, not missing):
    -- nothing is decided or written for them here.
    busy AS MATERIALIZED (
        SELECT g.n FROM go AS g
         WHERE NOT EXISTS (SELECT FROM wallet AS w WHERE w.n = g.n)
           AND coalesce((SELECT true FROM accounts WHERE kind = 'wallet' AND user_id = g.advertiser_id
                                                     AND currency = g.currency LIMIT 1), false)),
    -- The only way money leaves a wallet: guarded, never read-modify-write.
    debited AS (
        UPDATE accounts AS acc SET balance = acc.balance - g.amount, version = acc.version + 1
          FROM wallet AS w JOIN go AS g USING (n)
         WHERE acc.id = w.id AND acc.balance >= g.amount
        RETURNING w.n, acc.id, acc.balance, acc.version),
    -- Each escrow's own account, opened holding the amount (version 1).
    opened AS (
        INSERT INTO accounts (kind, escrow_target_id, currency, balance, version)
        SELECT 'escrow', g.target_id, g.currency, g.amount, 1 FROM debited AS d JOIN go AS g USING (n)
        RETURNING id, escrow_target_id, balance, version),
    tx AS (
        INSERT INTO ledger_transactions (id, kind, reference)
        SELECT g.tx, 'escrow_hold', CAST(g.target_id AS text) FROM opened AS o JOIN go AS g ON g.target_id = o.escrow_target_id
        RETURNING id),
    held AS MATERIALIZED (
        SELECT g.n, g.tx, d.id AS wallet_id, d.balance AS wallet_balance, d.version AS wallet_version,
               o.id AS escrow_account_id, o.balance AS escrow_balance, o.version AS escrow_version, g.amount
          FROM go AS g JOIN tx AS t ON t.id = g.tx JOIN debited AS d USING (n)
          JOIN opened AS o ON o.escrow_target_id = g.target_id),
    entries AS (
        INSERT INTO ledger_entries (transaction_id, account_id, kind, amount, balance_after, account_version)
        SELECT h.tx, leg.account_id, 'escrow_hold', leg.amount, leg.balance, leg.version
          FROM held AS h CROSS JOIN LATERAL (VALUES
               (h.wallet_id, -h.amount, h.wallet_balance, h.wallet_version),
               (h.escrow_account_id, h.amount, h.escrow_balance, h.escrow_version))
               AS leg(account_id, amount, balance, version)),
    -- 'held', or 'refused' with the reason and the balance it was refused on.
    step_record AS (
        INSERT INTO saga_steps (decision_id, step, target_id, outcome, detail)
        SELECT g.decision_id, :step, g.target_id, CASE WHEN h.n IS NULL THEN 'refused' ELSE 'held' END,
               CASE WHEN h.n IS NOT NULL THEN CAST('{{}}' AS jsonb)
                    ELSE jsonb_build_object('code', CAST(:refusal_code AS text), 'message',
                                            format(:refusal, coalesce(w.balance, 0), g.amount)) END
          FROM go AS g LEFT JOIN held AS h USING (n) LEFT JOIN wallet AS w USING (n)
         WHERE NOT EXISTS (SELECT FROM busy AS b WHERE b.n = g.n)
        RETURNING decision_id, outcome, detail),
    created AS (
        INSERT INTO escrows (id, target_id, decision_id, advertiser_id, publisher_id, amount, currency,
                             hold_transaction_id)
        SELECT g.escrow_id, g.target_id, g.decision_id, g.advertiser_id, g.publisher_id, g.amount, g.currency, h.tx
          FROM held AS h JOIN go AS g USING (n)
        RETURNING {COLUMNS})
    SELECT a.locked, EXISTS (SELECT FROM busy AS b WHERE b.n = a.n) AS busy, k.recorded_outcome, k.recorded_detail, k.recorded_for,
           r.outcome AS decided, r.detail AS decided_detail, {_ESCROW}
      FROM asked AS a JOIN known AS k USING (n)
      LEFT JOIN step_record AS r ON r.decision_id = a.decision_id
      LEFT JOIN (SELECT {_KNOWN_ESCROW} FROM known AS k WHERE k.id IS NOT NULL
                 UNION ALL
                 SELECT a.n, c.* FROM created AS c JOIN asked AS a ON CAST(a.target_id AS text) = c.target_id)
                AS e USING (n)
     ORDER BY a.n"""
# Holds carried out together never wait for a wallet another move holds:
# they skip it (the hold is `busy`), so one busy wallet never holds up the
# others' holds, and the statement never keeps wallets while waiting for
# another. A busy hold is then carried out alone, waiting for its wallet.
_HOLDS = sa.text(_HOLDS_TEMPLATE.replace("{wallet_lock}", "FOR NO KEY UPDATE SKIP LOCKED"))
_HOLD_ALONE = sa.text(_HOLDS_TEMPLATE.replace("{wallet_lock}", "FOR NO KEY UPDATE"))

_WAIT_FOR_TARGET = sa.text(
    "SELECT pg_advisory_xact_lock(hashtextextended('escrow-target:' || CAST(CAST(:target AS uuid) AS text), 0))")


@dataclasses.dataclass(frozen=True)
class HoldAttempt:
    """What one run of the hold statement found or decided: the step's
    record for the decision and the target's escrow, each either found or
    written just now. Both are None only when nothing was written: the
    target's lock was taken by another hold of it (`locked` false), or its
    wallet by another move (`busy`)."""
    locked: bool
    busy: bool
    recorded: steps.StepRecord | None
    escrow: EscrowRow | None


def hold_params(asked: list[domain.HoldTerms], escrow_ids: list[str], txs: list[str]) -> dict:
    """The hold statement's parameters (the benchmark sends the same)."""
    return {"targets": [t.target_id for t in asked], "decisions": [t.decision_id for t in asked],
            "advertisers": [t.advertiser_id for t in asked], "publishers": [t.publisher_id for t in asked],
            "amounts": [t.amount for t in asked], "currencies": [t.currency for t in asked],
            "escrow_ids": escrow_ids, "txs": txs, "step": domain.HOLD_STEP, "refusal": domain.INSUFFICIENT_FUNDS,
            "refusal_code": domain.InsufficientFunds.code}


def keys_of(terms: domain.HoldTerms) -> tuple:
    """What no two holds of one statement may share: two debits of one
    wallet in one UPDATE would be one, two records of one decision or two
    escrows of one target a unique violation."""
    return ("target", terms.target_id), ("decision", terms.decision_id), ("wallet", terms.advertiser_id, terms.currency)


async def attempt(uow: UnitOfWork, asked: list[domain.HoldTerms], *, wait_for_wallet: bool = False) -> list[HoldAttempt]:
    """Runs the hold statement for `asked`; one attempt per hold, in order.
    Without `wait_for_wallet` a hold whose wallet another move holds comes
    back `busy`; with it (one hold alone) it waits for the wallet."""
    keys = [key for terms in asked for key in keys_of(terms)]
    if len(set(keys)) != len(keys):
        raise ValueError("a hold statement takes at most one hold per target, decision and wallet")
    if wait_for_wallet and len(asked) != 1:
        raise ValueError("only a hold alone waits for its wallet")
    params = hold_params(asked, [str(uuid.uuid4()) for _ in asked], [ledger.new_transaction_id() for _ in asked])
    rows = (await uow.execute(_HOLD_ALONE if wait_for_wallet else _HOLDS, params)).all()
    return [HoldAttempt(row.locked, row.busy, steps.record_of(row, terms.target_id), escrow_from(row))
            for terms, row in zip(asked, rows, strict=True)]


async def wait_for_target(uow: UnitOfWork, target_id: str) -> None:
    """Queues behind the hold of the same target that holds the lock; the
    lock is then this transaction's until it ends."""
    await uow.execute(_WAIT_FOR_TARGET, {"target": target_id})
