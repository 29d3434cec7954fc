"""Release and refund: the guarded close of a held escrow and its money
moves, in one statement. The escrow's own account is emptied into the
payee's wallet (and, for a release, one platform fee shard); an account
that does not exist yet (a publisher's first payout, a fee shard's first
fee) is opened by the credit itself.

Lock order (store/ledger.py): the payee's wallet first, then this escrow's
rows (its escrow row, its account), then the one fee shard. The CTEs read
each other's output in that order, which is what makes PostgreSQL run them
so. The wallet is locked when it exists; one opened here is new, and any
other move that wants it waits for the insert, not in a circle.

The close is guarded (`status = 'held'`): of two closes of one escrow, the
second matches nothing, moves nothing, and the statement answers no row."""
import dataclasses

import sqlalchemy as sa

from common.db import UnitOfWork
from services.payments import domain
from services.payments.store.escrows import COLUMNS, EscrowRow, escrow_from

_CLOSE = sa.text(f"""
    WITH payee AS (
        SELECT count(*) AS locked FROM (
            SELECT id FROM accounts
             WHERE kind = 'wallet' AND user_id = CAST(:payee AS uuid) AND currency = :currency
            FOR NO KEY UPDATE) AS wallet),
    closed AS (
        UPDATE escrows SET status = :status, fee = CAST(:fee AS bigint), close_transaction_id = CAST(:tx AS uuid),
                           updated_at = now()
         WHERE id = CAST(:id AS uuid) AND status = 'held' AND amount = CAST(:amount AS bigint)
           AND currency = :currency AND (SELECT locked FROM payee) IS NOT NULL
        RETURNING {COLUMNS}),
    drained AS (
        UPDATE accounts SET balance = balance - CAST(:amount AS bigint), version = version + 1
         WHERE kind = 'escrow' AND escrow_target_id = (SELECT CAST(target_id AS uuid) FROM closed)
        RETURNING id, balance, version),
    legs AS (
        SELECT * FROM unnest(CAST(:credit_kinds AS text[]), CAST(:credit_users AS uuid[]),
                             CAST(:credit_shards AS smallint[]), CAST(:credit_amounts AS bigint[]),
                             CAST(:entry_kinds AS text[])) AS leg(kind, user_id, shard, amount, entry_kind)),
    -- Credits open the account they need; the CHECK keeps balances >= 0.
    credited AS (
        INSERT INTO accounts AS a (kind, user_id, shard, currency, balance, version)
        SELECT kind, user_id, shard, :currency, amount, 1 FROM legs WHERE EXISTS (SELECT FROM drained)
        ON CONFLICT ON CONSTRAINT accounts_one_per_owner
        DO UPDATE SET balance = a.balance + EXCLUDED.balance, version = a.version + 1
        RETURNING a.id, a.kind, a.user_id, a.shard, a.balance, a.version),
    tx AS (
        INSERT INTO ledger_transactions (id, kind, reference)
        SELECT CAST(:tx AS uuid), :kind, target_id FROM closed WHERE EXISTS (SELECT FROM drained)
        RETURNING id),
    entries AS (
        INSERT INTO ledger_entries (transaction_id, account_id, kind, amount, balance_after, account_version)
        SELECT tx.id, leg.id, leg.kind, leg.amount, leg.balance, leg.version
          FROM tx, (SELECT id, CAST(:kind AS text) AS kind, -CAST(:amount AS bigint) AS amount, balance, version
                      FROM drained
                    UNION ALL
                    SELECT c.id, l.entry_kind, l.amount, c.balance, c.version
                      FROM credited AS c
                      JOIN legs AS l ON l.kind = c.kind AND l.user_id IS NOT DISTINCT FROM c.user_id
                                    AND l.shard = c.shard) AS leg)
    SELECT * FROM closed""")


@dataclasses.dataclass(frozen=True)
class Credit:
    """Money into one account: a wallet (user_id) or a system shard."""
    kind: str
    user_id: str | None
    shard: int
    amount: int
    entry_kind: str


async def _close(uow: UnitOfWork, escrow: EscrowRow, status: str, kind: str, payee: str, fee: int | None,
                 credits: list[Credit], tx: str) -> EscrowRow | None:
    credits = [c for c in credits if c.amount]  # an entry moves something
    row = (await uow.execute(_CLOSE, {
        "id": escrow.id, "status": status, "kind": kind, "fee": fee, "tx": tx, "amount": escrow.amount,
        "currency": escrow.currency, "payee": payee,
        "credit_kinds": [c.kind for c in credits], "credit_users": [c.user_id for c in credits],
        "credit_shards": [c.shard for c in credits], "credit_amounts": [c.amount for c in credits],
        "entry_kinds": [c.entry_kind for c in credits]})).first()
    return escrow_from(row)


async def release(uow: UnitOfWork, escrow: EscrowRow, payout: int, fee: int, tx: str) -> EscrowRow | None:
    """held → released: the payout to the publisher, the fee to the fee
    shard of the target; None when the escrow was no longer held."""
    return await _close(uow, escrow, domain.RELEASED, domain.ESCROW_RELEASE, escrow.publisher_id, fee, [
        Credit(domain.WALLET, escrow.publisher_id, 0, payout, domain.ESCROW_RELEASE),
        Credit(domain.PLATFORM_FEE, None, domain.ledger_shard(escrow.target_id), fee, domain.FEE)], tx)


async def refund(uow: UnitOfWork, escrow: EscrowRow, tx: str) -> EscrowRow | None:
    """held → refunded: the amount back to the advertiser; None when the
    escrow was no longer held."""
    return await _close(uow, escrow, domain.REFUNDED, domain.ESCROW_REFUND, escrow.advertiser_id, None, [
        Credit(domain.WALLET, escrow.advertiser_id, 0, escrow.amount, domain.ESCROW_REFUND)], tx)
