"""Withdrawals (publisher payouts): the row that claims the Idempotency-Key,
the guarded moves of the money, the pages.

Money: a request moves the amount from the wallet into the user's own
pending-payouts account; a completion from there to one shard of external
funding; a rejection back into the wallet. Each is one ledger transaction
in the unit of work that writes or closes the row.

Lock order (store/ledger.py): a request inserts its row (a second request
with the same key waits on that insert, holding nothing else), then locks
the wallet (the guarded debit), then the user's pending-payouts account. A
completion or rejection first closes its row (guarded, `status =
'pending'`: of two, the second matches nothing and moves nothing), then
the wallet (a rejection), then the pending-payouts account, then the one
external shard (a completion). Only the completion and rejection of one
withdrawal ever lock its row, and no move takes a wallet or a
pending-payouts account and then a withdrawal row, so none waits in a
circle."""
import dataclasses
import datetime as dt
import uuid

import sqlalchemy as sa

from common.db import UnitOfWork
from services.payments import domain

COLUMNS = """CAST(id AS text) AS id, CAST(user_id AS text) AS user_id, amount, currency, destination, status,
              external_reference, reason, created_at, updated_at"""

_CLAIM = sa.text(f"""
    INSERT INTO withdrawals (id, user_id, idempotency_key, amount, currency, destination, request_transaction_id)
    VALUES (CAST(:id AS uuid), CAST(:user AS uuid), :key, :amount, :currency, :destination, CAST(:tx AS uuid))
    ON CONFLICT ON CONSTRAINT withdrawals_one_per_key DO NOTHING
    RETURNING {COLUMNS}""")

_BY_KEY = sa.text(f"SELECT {COLUMNS} FROM withdrawals WHERE user_id = CAST(:user AS uuid) AND idempotency_key = :key")

_BY_ID = sa.text(f"SELECT {COLUMNS} FROM withdrawals WHERE id = CAST(:id AS uuid)")

# The only way money leaves a wallet: guarded, never read-modify-write.
_DEBIT_WALLET = sa.text("""
    UPDATE accounts SET balance = balance - CAST(:amount AS bigint), version = version + 1
     WHERE kind = 'wallet' AND user_id = CAST(:user AS uuid) AND currency = :currency
       AND balance >= CAST(:amount AS bigint)
    RETURNING id, balance, version""")

_CREDIT_WALLET = sa.text("""
    UPDATE accounts SET balance = balance + CAST(:amount AS bigint), version = version + 1
     WHERE kind = 'wallet' AND user_id = CAST(:user AS uuid) AND currency = :currency
    RETURNING id, balance, version""")

_BALANCE = sa.text("""
    SELECT coalesce((SELECT balance FROM accounts
                      WHERE kind = 'wallet' AND user_id = CAST(:user AS uuid) AND currency = :currency), 0)""")

# The user's pending-payouts account, opened by the first credit.
_CREDIT_PENDING = sa.text("""
    INSERT INTO accounts AS a (kind, user_id, shard, currency, balance, version)
    VALUES ('pending_payout', CAST(:user AS uuid), 0, :currency, CAST(:amount AS bigint), 1)
    ON CONFLICT ON CONSTRAINT accounts_one_per_owner
    DO UPDATE SET balance = a.balance + EXCLUDED.balance, version = a.version + 1
    RETURNING a.id, a.balance, a.version""")

# The CHECK keeps it from going below zero.
_DEBIT_PENDING = sa.text("""
    UPDATE accounts SET balance = balance - CAST(:amount AS bigint), version = version + 1
     WHERE kind = 'pending_payout' AND user_id = CAST(:user AS uuid) AND currency = :currency
    RETURNING id, balance, version""")

# One shard of external funding, opened by its first credit.
_CREDIT_EXTERNAL = sa.text("""
    INSERT INTO accounts AS a (kind, user_id, shard, currency, balance, version)
    VALUES ('external', NULL, :shard, :currency, CAST(:amount AS bigint), 1)
    ON CONFLICT ON CONSTRAINT accounts_one_per_owner
    DO UPDATE SET balance = a.balance + EXCLUDED.balance, version = a.version + 1
    RETURNING a.id, a.balance, a.version""")

_CLOSE = sa.text(f"""
    UPDATE withdrawals SET status = :status, external_reference = :external_reference, reason = :reason,
                           close_transaction_id = CAST(:tx AS uuid), updated_at = now()
     WHERE id = CAST(:id AS uuid) AND status = 'pending'
    RETURNING {COLUMNS}""")

_PAGE = sa.text(f"""
    SELECT {COLUMNS} FROM withdrawals
     WHERE (CAST(:user AS uuid) IS NULL OR user_id = CAST(:user AS uuid))
       AND (CAST(:status AS text) IS NULL OR status = CAST(:status AS text))
       AND (created_at, id) < (:created_at, CAST(:after_id AS uuid))
     ORDER BY created_at DESC, id DESC LIMIT :limit""")


@dataclasses.dataclass(frozen=True)
class WithdrawalRow:
    id: str
    user_id: str
    amount: int
    currency: str
    destination: str
    status: str
    external_reference: str | None
    reason: str | None
    created_at: dt.datetime
    updated_at: dt.datetime

    @property
    def terms(self) -> domain.WithdrawalTerms:
        return domain.WithdrawalTerms(self.user_id, self.amount, self.currency, self.destination)


@dataclasses.dataclass(frozen=True)
class AccountState:
    """An account as a move left it: (id, balance, version)."""
    id: int
    balance: int
    version: int

    @property
    def state(self) -> tuple[int, int]:
        return self.balance, self.version


def _withdrawal(row) -> WithdrawalRow | None:
    if row is None:
        return None
    return WithdrawalRow(row.id, row.user_id, row.amount, row.currency, row.destination, row.status,
                         row.external_reference, row.reason, row.created_at, row.updated_at)


def _account(row) -> AccountState | None:
    return None if row is None else AccountState(row.id, row.balance, row.version)


async def claim(uow: UnitOfWork, withdrawal_id: str, key: str, terms: domain.WithdrawalTerms,
                tx: str) -> WithdrawalRow | None:
    """The new pending withdrawal, or None when the user used the key
    before (after waiting for a concurrent request with it to end)."""
    return _withdrawal((await uow.execute(_CLAIM, {
        "id": withdrawal_id, "user": terms.user_id, "key": key, "amount": terms.amount, "currency": terms.currency,
        "destination": terms.destination, "tx": tx})).first())


async def by_key(uow: UnitOfWork, user_id: str, key: str) -> WithdrawalRow:
    return _withdrawal((await uow.execute(_BY_KEY, {"user": user_id, "key": key})).one())


async def by_id(uow: UnitOfWork, withdrawal_id: str) -> WithdrawalRow | None:
    return _withdrawal((await uow.execute(_BY_ID, {"id": withdrawal_id})).first())


async def debit_wallet(uow: UnitOfWork, user_id: str, currency: str, amount: int) -> AccountState | None:
    """The wallet after the debit, or None when it cannot cover `amount`."""
    return _account((await uow.execute(_DEBIT_WALLET, {"user": user_id, "currency": currency,
                                                       "amount": amount})).first())


async def credit_wallet(uow: UnitOfWork, user_id: str, currency: str, amount: int) -> AccountState:
    return _account((await uow.execute(_CREDIT_WALLET, {"user": user_id, "currency": currency,
                                                        "amount": amount})).one())


async def balance(uow: UnitOfWork, user_id: str, currency: str) -> int:
    return int(await uow.scalar(_BALANCE, {"user": user_id, "currency": currency}))


async def credit_pending(uow: UnitOfWork, user_id: str, currency: str, amount: int) -> AccountState:
    return _account((await uow.execute(_CREDIT_PENDING, {"user": user_id, "currency": currency,
                                                         "amount": amount})).one())


async def debit_pending(uow: UnitOfWork, user_id: str, currency: str, amount: int) -> AccountState:
    return _account((await uow.execute(_DEBIT_PENDING, {"user": user_id, "currency": currency,
                                                        "amount": amount})).one())


async def credit_external(uow: UnitOfWork, currency: str, shard: int, amount: int) -> AccountState:
    return _account((await uow.execute(_CREDIT_EXTERNAL, {"shard": shard, "currency": currency,
                                                          "amount": amount})).one())


async def close(uow: UnitOfWork, withdrawal_id: str, status: str, tx: str, *, external_reference: str | None = None,
                reason: str | None = None) -> WithdrawalRow | None:
    """pending → `status`; None when it was not pending (or does not exist)."""
    return _withdrawal((await uow.execute(_CLOSE, {
        "id": withdrawal_id, "status": status, "tx": tx, "external_reference": external_reference,
        "reason": reason})).first())


async def page(uow: UnitOfWork, user_id: str | None, status: str | None,
               after: tuple[dt.datetime, uuid.UUID] | None, limit: int) -> list[WithdrawalRow]:
    created_at, last_id = after or (dt.datetime.max.replace(tzinfo=dt.timezone.utc), uuid.UUID(int=2**128 - 1))
    rows = (await uow.execute(_PAGE, {"user": user_id, "status": status, "created_at": created_at,
                                      "after_id": str(last_id), "limit": limit})).all()
    return [_withdrawal(r) for r in rows]
