"""Accounts and the double-entry ledger: find or open accounts, lock them in
id order, and post a balanced transaction.

Every multi-account move first locks its accounts with one
`SELECT … ORDER BY id FOR UPDATE`: a fixed order means two moves sharing
accounts (a hold and a refund of one wallet) can never deadlock."""
import dataclasses
import uuid

import sqlalchemy as sa

from common.db import UnitOfWork
from services.payments import domain

_ENSURE = sa.text("""
    INSERT INTO accounts (kind, user_id, currency)
    SELECT k, u, :currency FROM unnest(CAST(:kinds AS text[]), CAST(:users AS uuid[])) AS w(k, u)
    ON CONFLICT ON CONSTRAINT accounts_one_per_owner DO NOTHING""")

_LOCK = sa.text("""
    SELECT id, kind, CAST(user_id AS text) AS user_id, balance FROM accounts
     WHERE currency = :currency
       AND ((kind = 'wallet' AND user_id = ANY(CAST(:users AS uuid[]))) OR kind = ANY(CAST(:system AS text[])))
     ORDER BY id FOR UPDATE""")

# The only way money leaves a non-external account: conditional, never
# read-modify-write, so a balance cannot go below zero even if a lock were missed.
_DEBIT = sa.text("""
    UPDATE accounts SET balance = balance - :amount, version = version + 1
     WHERE id = :id AND balance >= :amount
    RETURNING id, balance, version""")

_APPLY = sa.text("""
    UPDATE accounts AS a SET balance = a.balance + m.delta, version = a.version + 1
      FROM unnest(CAST(:ids AS bigint[]), CAST(:deltas AS bigint[])) AS m(id, delta)
     WHERE a.id = m.id
    RETURNING a.id, a.balance, a.version""")

_RECORD = sa.text("""
    WITH tx AS (
        INSERT INTO ledger_transactions (id, kind, reference) VALUES (:tx, :kind, :reference) RETURNING id)
    INSERT INTO ledger_entries (transaction_id, account_id, kind, amount, balance_after, account_version)
    SELECT (SELECT id FROM tx), e.account_id, e.kind, e.amount, e.balance_after, e.version
      FROM unnest(CAST(:accounts AS bigint[]), CAST(:kinds AS text[]), CAST(:amounts AS bigint[]),
                  CAST(:balances AS bigint[]), CAST(:versions AS bigint[]))
           AS e(account_id, kind, amount, balance_after, version)""")

_WALLET = sa.text("""
    SELECT coalesce((SELECT balance FROM accounts
                      WHERE kind = 'wallet' AND user_id = :user AND currency = :currency), 0) AS balance,
           coalesce((SELECT sum(amount) FROM escrows
                      WHERE advertiser_id = :user AND currency = :currency AND status = 'held'), 0) AS held""")

_LEDGER_PAGE = sa.text("""
    SELECT CAST(e.id AS text) AS id, CAST(e.transaction_id AS text) AS transaction_id, e.kind, e.amount,
           e.balance_after, e.account_version, t.reference, e.created_at
      FROM accounts a
      JOIN ledger_entries e ON e.account_id = a.id
      JOIN ledger_transactions t ON t.id = e.transaction_id
     WHERE a.kind = 'wallet' AND a.user_id = :user AND a.currency = :currency
       AND e.account_version < :before
     ORDER BY e.account_version DESC
     LIMIT :limit""")


@dataclasses.dataclass(frozen=True)
class Account:
    id: int
    kind: str
    user_id: str | None
    balance: int


@dataclasses.dataclass(frozen=True)
class Leg:
    """One side of a move: a signed change of one account."""
    account: Account
    kind: str
    amount: int


class Accounts:
    """The locked accounts of one move, found by owner."""

    def __init__(self, rows: list[Account]):
        self.rows = rows

    def wallet(self, user_id: str) -> Account:
        return next(a for a in self.rows if a.kind == domain.WALLET and a.user_id == user_id)

    def system(self, kind: str) -> Account:
        return next(a for a in self.rows if a.kind == kind)


async def lock_accounts(uow: UnitOfWork, currency: str, users: list[str], system: list[str]) -> Accounts:
    """Locks (opening them when missing) the wallets of `users` and the
    system accounts `system` of one currency, in id order."""
    users = sorted(set(users))
    params = {"currency": currency, "users": users, "system": system}
    rows = (await uow.execute(_LOCK, params)).all()
    if len(rows) < len(users) + len(system):
        await uow.execute(_ENSURE, {"currency": currency, "kinds": [domain.WALLET] * len(users) + system,
                                    "users": users + [None] * len(system)})
        rows = (await uow.execute(_LOCK, params)).all()
    return Accounts([Account(r.id, r.kind, r.user_id, r.balance) for r in rows])


async def debit(uow: UnitOfWork, account: Account, amount: int) -> tuple[int, int] | None:
    """Takes `amount` from a locked account if it has it: (balance, version)
    after, or None when the balance does not cover it (nothing changed)."""
    row = (await uow.execute(_DEBIT, {"id": account.id, "amount": amount})).first()
    return None if row is None else (row.balance, row.version)


async def post(uow: UnitOfWork, kind: str, reference: str, legs: list[Leg],
               debited: dict[int, tuple[int, int]] | None = None) -> str:
    """Applies the legs not already applied by `debit` and records the
    transaction and its entries; the database refuses it at commit unless
    the legs sum to zero. Returns the transaction id."""
    states = dict(debited or {})
    pending = [leg for leg in legs if leg.account.id not in states]
    if pending:
        rows = (await uow.execute(_APPLY, {"ids": [leg.account.id for leg in pending],
                                           "deltas": [leg.amount for leg in pending]})).all()
        states.update({r.id: (r.balance, r.version) for r in rows})
    tx = str(uuid.uuid4())
    await uow.execute(_RECORD, {
        "tx": tx, "kind": kind, "reference": reference,
        "accounts": [leg.account.id for leg in legs], "kinds": [leg.kind for leg in legs],
        "amounts": [leg.amount for leg in legs],
        "balances": [states[leg.account.id][0] for leg in legs],
        "versions": [states[leg.account.id][1] for leg in legs]})
    return tx


async def wallet(uow: UnitOfWork, user_id: str, currency: str) -> tuple[int, int]:
    """(spendable balance, held) of a user's wallet; (0, 0) when it has none yet."""
    row = (await uow.execute(_WALLET, {"user": user_id, "currency": currency})).one()
    return int(row.balance), int(row.held)


async def ledger_page(uow: UnitOfWork, user_id: str, currency: str, before: int | None, limit: int) -> list:
    """A wallet's entries older than version `before`, newest first."""
    return (await uow.execute(_LEDGER_PAGE, {"user": user_id, "currency": currency,
                                             "before": before if before is not None else 2**63 - 1,
                                             "limit": limit})).all()
