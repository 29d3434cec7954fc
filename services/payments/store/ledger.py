"""Accounts and the double-entry ledger: find or open accounts, lock them in
a fixed order, and post a balanced transaction.

Lock order, the same for every move so two moves can never deadlock:
0. a hold's target lock: only tried in the hold statement; a hold that
   waits for it (store/holds.py) holds nothing else meanwhile;
1. the one wallet the move debits or credits (a move touches at most one,
   and takes it before anything below; a statement of several holds takes
   their wallets in (owner, currency) order, never waiting: it skips a
   wallet another move holds, and then takes only rows it creates);
2. the rows of one target: its escrow row and its escrow account, which
   only that target's hold, release and refund touch;
3. at most one shard of a system account (platform fee, external funding),
   chosen from the target or the transaction (domain.ledger_shard).
Withdrawals (store/withdrawals.py): a completion or rejection first locks
the withdrawal's row, which only those two ever lock and while holding
nothing else; then, like every move, the wallet (a request, a rejection),
then the user's own pending-payouts account (in place of a target's rows),
then one external shard (a completion).
A move holds at most one wallet, one target's rows and one shard, taken in
this order, so no two moves wait for each other in a circle. No row is
shared by every move of a currency: holds, releases and refunds of
different targets wait for each other only when they share a wallet (or,
for releases and deposits, a shard: 1 in LEDGER_SHARDS). HoldEscrow
(store/holds.py) and the close of a release or refund
(store/settlements.py) are each one statement taking its locks in this
order."""
import dataclasses
import uuid

import sqlalchemy as sa

from common.db import UnitOfWork
from services.payments import domain

_ENSURE = sa.text("""
    INSERT INTO accounts (kind, user_id, shard, currency)
    SELECT k, u, CASE WHEN k = 'wallet' THEN 0 ELSE :shard END, :currency
      FROM unnest(CAST(:kinds AS text[]), CAST(:users AS uuid[])) AS w(k, u)
    ON CONFLICT ON CONSTRAINT accounts_one_per_owner DO NOTHING""")

_LOCK = sa.text("""
    SELECT id, kind, CAST(user_id AS text) AS user_id, balance, version FROM accounts
     WHERE currency = :currency AND escrow_target_id IS NULL
       AND ((kind = 'wallet' AND user_id = ANY(CAST(:users AS uuid[])))
            OR (kind = ANY(CAST(:system AS text[])) AND shard = :shard))
     ORDER BY kind <> 'wallet', id FOR UPDATE""")

# One statement: apply the legs not applied yet (their rows are locked
# already; the CHECK keeps non-external accounts from going negative),
# then record the transaction and one entry per leg with the state it left.
_POST = sa.text("""
    WITH legs AS (
        SELECT * FROM unnest(CAST(:accounts AS bigint[]), CAST(:kinds AS text[]), CAST(:amounts AS bigint[]),
                             CAST(:applied AS boolean[]), CAST(:balances AS bigint[]), CAST(:versions AS bigint[]))
                   AS l(account_id, kind, amount, applied, balance_after, version)),
    moved AS (
        UPDATE accounts AS a SET balance = a.balance + l.amount, version = a.version + 1
          FROM legs AS l WHERE a.id = l.account_id AND NOT l.applied
        RETURNING a.id, a.balance, a.version),
    tx AS (
        INSERT INTO ledger_transactions (id, kind, reference) VALUES (:tx, :kind, :reference) RETURNING id)
    INSERT INTO ledger_entries (transaction_id, account_id, kind, amount, balance_after, account_version)
    SELECT (SELECT id FROM tx), l.account_id, l.kind, l.amount,
           coalesce(m.balance, l.balance_after), coalesce(m.version, l.version)
      FROM legs AS l LEFT JOIN moved AS m ON m.id = l.account_id""")

# A wallet page's three figures on one snapshot, in one round trip.
_WALLET = sa.text("""
    SELECT coalesce((SELECT balance FROM accounts
                      WHERE kind = 'wallet' AND user_id = :user AND currency = :currency), 0) AS balance,
           (SELECT coalesce(sum(amount), 0) FROM escrows
             WHERE advertiser_id = :user AND currency = :currency AND status = 'held') AS held,
           coalesce((SELECT balance FROM accounts
                      WHERE kind = 'pending_payout' AND user_id = :user AND currency = :currency), 0)
             AS pending_payout""")

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
    version: int


@dataclasses.dataclass(frozen=True)
class Leg:
    """One side of a move: a signed change of one account. `state` is the
    (balance, version) it was left with when already applied (a wallet debit)."""
    account_id: int
    kind: str
    amount: int
    state: tuple[int, int] | None = None


class Accounts:
    """The locked accounts of one move, found by owner (one shard of each
    system kind)."""

    def __init__(self, rows: list[Account]):
        self.rows = rows

    def wallet(self, user_id: str) -> Account:
        return next(a for a in self.rows if a.kind == domain.WALLET and a.user_id == user_id)

    def system(self, kind: str) -> Account:
        return next(a for a in self.rows if a.kind == kind)


async def lock_accounts(uow: UnitOfWork, currency: str, users: list[str], system: list[str], shard: int) -> Accounts:
    """Locks (opening them when missing) the wallets of `users` and shard
    `shard` of the system accounts `system` of one currency, in the fixed
    order."""
    users = sorted(set(users))
    params = {"currency": currency, "users": users, "system": system, "shard": shard}
    rows = (await uow.execute(_LOCK, params)).all()
    if len(rows) < len(users) + len(system):
        await uow.execute(_ENSURE, {"currency": currency, "kinds": [domain.WALLET] * len(users) + system,
                                    "users": users + [None] * len(system), "shard": shard})
        rows = (await uow.execute(_LOCK, params)).all()
    return Accounts([Account(r.id, r.kind, r.user_id, r.balance, r.version) for r in rows])


def new_transaction_id() -> str:
    return str(uuid.uuid4())


async def post(uow: UnitOfWork, tx: str, kind: str, reference: str, legs: list[Leg]) -> None:
    """Applies the legs not applied yet and records the transaction and its
    entries; the database refuses it at commit unless the legs sum to zero."""
    await uow.execute(_POST, {
        "tx": tx, "kind": kind, "reference": reference,
        "accounts": [leg.account_id for leg in legs], "kinds": [leg.kind for leg in legs],
        "amounts": [leg.amount for leg in legs], "applied": [leg.state is not None for leg in legs],
        "balances": [leg.state[0] if leg.state else None for leg in legs],
        "versions": [leg.state[1] if leg.state else None for leg in legs]})


# The owner's first read of a wallet opens it: from then on it may receive
# deposits (a deposit never opens a wallet for a user id nobody has used).
_OPEN_WALLET = sa.text("""
    INSERT INTO accounts (kind, user_id, shard, currency) VALUES ('wallet', :user, 0, :currency)
    ON CONFLICT ON CONSTRAINT accounts_one_per_owner DO NOTHING""")

_HAS_WALLET = sa.text("SELECT EXISTS (SELECT FROM accounts WHERE kind = 'wallet' AND user_id = :user)")


async def open_wallet(uow: UnitOfWork, user_id: str, currency: str) -> None:
    await uow.execute(_OPEN_WALLET, {"user": user_id, "currency": currency})


async def has_wallet(uow: UnitOfWork, user_id: str) -> bool:
    """Whether the user has opened a wallet (in any currency)."""
    return bool(await uow.scalar(_HAS_WALLET, {"user": user_id}))


async def wallet(uow: UnitOfWork, user_id: str, currency: str) -> tuple[int, int, int]:
    """(balance, held in escrows as advertiser, pending payout); a user
    without a wallet has (0, 0, 0)."""
    row = (await uow.execute(_WALLET, {"user": user_id, "currency": currency})).one()
    return int(row.balance), int(row.held), int(row.pending_payout)


async def ledger_page(uow: UnitOfWork, user_id: str, currency: str, before: int | None, limit: int) -> list:
    """A wallet's entries older than version `before`, newest first."""
    return (await uow.execute(_LEDGER_PAGE, {"user": user_id, "currency": currency,
                                             "before": before if before is not None else 2**63 - 1,
                                             "limit": limit})).all()
