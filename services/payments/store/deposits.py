"""Deposit idempotency keys: claimed, and their result written, in the
transaction that moves the money."""
import dataclasses

import sqlalchemy as sa

from common.db import UnitOfWork

# A second request with the key waits here on the first one's row lock, then
# sees nothing inserted and reads the winner's result once it has committed
# (or claims the key itself if the winner rolled back).
#
# The claim also reads what the user has held in escrows and pending
# payout, which the deposit answers with: one round trip for all.
_CLAIM = sa.text("""
    WITH claimed AS (
        INSERT INTO deposit_keys (key, fingerprint, user_id, currency) VALUES (:key, :fingerprint, :user, :currency)
        ON CONFLICT (key) DO NOTHING RETURNING key)
    SELECT EXISTS (SELECT FROM claimed) AS claimed,
           (SELECT coalesce(sum(amount), 0) FROM escrows
             WHERE advertiser_id = :user AND currency = :currency AND status = 'held') AS held,
           coalesce((SELECT balance FROM accounts
                      WHERE kind = 'pending_payout' AND user_id = :user AND currency = :currency), 0)
             AS pending_payout""")

_STORED = sa.text("""
    SELECT fingerprint, CAST(user_id AS text) AS user_id, currency, CAST(transaction_id AS text) AS transaction_id,
           balance_after, held_after, coalesce(pending_payout_after, 0) AS pending_payout_after
      FROM deposit_keys WHERE key = :key""")

_RESULT = sa.text("""
    UPDATE deposit_keys SET transaction_id = :tx, balance_after = :balance, held_after = :held,
                            pending_payout_after = :pending_payout
     WHERE key = :key AND transaction_id IS NULL""")


@dataclasses.dataclass(frozen=True)
class StoredDeposit:
    fingerprint: str
    user_id: str
    currency: str
    transaction_id: str
    balance_after: int
    held_after: int
    pending_payout_after: int


async def claim(uow: UnitOfWork, key: str, fingerprint: str, user_id: str,
                currency: str) -> tuple[bool, int, int]:
    """(True when this request owns the key, False when another did first;
    what the user has in held escrows as advertiser; what the user has in
    pending payouts)."""
    row = (await uow.execute(_CLAIM, {"key": key, "fingerprint": fingerprint, "user": user_id,
                                      "currency": currency})).one()
    return row.claimed, int(row.held), int(row.pending_payout)


async def stored(uow: UnitOfWork, key: str) -> StoredDeposit:
    row = (await uow.execute(_STORED, {"key": key})).one()
    return StoredDeposit(row.fingerprint, row.user_id, row.currency, row.transaction_id, row.balance_after,
                         row.held_after, row.pending_payout_after)


async def record_result(uow: UnitOfWork, key: str, tx: str, balance: int, held: int, pending_payout: int) -> None:
    await uow.execute(_RESULT, {"key": key, "tx": tx, "balance": balance, "held": held,
                                "pending_payout": pending_payout})
