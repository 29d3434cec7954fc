"""Deposit idempotency keys: claimed, and their result written, in the
transaction that moves the money."""
import dataclasses

import sqlalchemy as sa

from common.db import UnitOfWork

# A second request with the key waits here on the first one's row lock, then
# sees nothing inserted and reads the winner's result once it has committed
# (or claims the key itself if the winner rolled back).
#
# The claim also reads what the user has held in escrows, which the deposit
# answers with: one round trip for both.
_CLAIM = sa.text("""
    WITH claimed AS (
        INSERT INTO deposit_keys (key, fingerprint, user_id, currency) VALUES (:key, :fingerprint, :user, :currency)
        ON CONFLICT (key) DO NOTHING RETURNING key)
    SELECT EXISTS (SELECT FROM claimed) AS claimed,
           (SELECT coalesce(sum(amount), 0) FROM escrows
             WHERE advertiser_id = :user AND currency = :currency AND status = 'held') AS held""")

_STORED = sa.text("""
    SELECT fingerprint, CAST(user_id AS text) AS user_id, currency, CAST(transaction_id AS text) AS transaction_id,
           balance_after, held_after
      FROM deposit_keys WHERE key = :key""")

_RESULT = sa.text("""
    UPDATE deposit_keys SET transaction_id = :tx, balance_after = :balance, held_after = :held
     WHERE key = :key AND transaction_id IS NULL""")


@dataclasses.dataclass(frozen=True)
class StoredDeposit:
    fingerprint: str
    user_id: str
    currency: str
    transaction_id: str
    balance_after: int
    held_after: int


async def claim(uow: UnitOfWork, key: str, fingerprint: str, user_id: str, currency: str) -> tuple[bool, int]:
    """(True when this request owns the key, False when another did first;
    what the user has in held escrows as advertiser)."""
    row = (await uow.execute(_CLAIM, {"key": key, "fingerprint": fingerprint, "user": user_id,
                                      "currency": currency})).one()
    return row.claimed, int(row.held)


async def stored(uow: UnitOfWork, key: str) -> StoredDeposit:
    row = (await uow.execute(_STORED, {"key": key})).one()
    return StoredDeposit(row.fingerprint, row.user_id, row.currency, row.transaction_id, row.balance_after,
                         row.held_after)


async def record_result(uow: UnitOfWork, key: str, tx: str, balance: int, held: int) -> None:
    await uow.execute(_RESULT, {"key": key, "tx": tx, "balance": balance, "held": held})
