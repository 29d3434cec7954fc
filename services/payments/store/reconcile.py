"""The ledger invariants, each as a query listing the rows that break it.
Run in one REPEATABLE READ snapshot so concurrent moves cannot show up
half-done."""
import dataclasses

import sqlalchemy as sa

from common.db import UnitOfWork

# name → a query whose rows are offenders, each described by one `detail` text.
CHECKS: dict[str, str] = {
    "transactions_sum_to_zero": """
        SELECT format('transaction %s sums to %s', transaction_id, sum(amount)) AS detail
          FROM ledger_entries GROUP BY transaction_id HAVING sum(amount) <> 0""",
    "transactions_have_entries": """
        SELECT format('transaction %s has no entries', t.id) AS detail
          FROM ledger_transactions t WHERE NOT EXISTS (SELECT 1 FROM ledger_entries e WHERE e.transaction_id = t.id)""",
    "no_negative_balance": """
        SELECT format('%s account %s (%s) has balance %s', kind, id, currency, balance) AS detail
          FROM accounts WHERE kind <> 'external' AND balance < 0""",
    "balance_equals_sum_of_entries": """
        SELECT format('%s account %s has balance %s, entries sum to %s', a.kind, a.id, a.balance, coalesce(s.total, 0)) AS detail
          FROM accounts a LEFT JOIN (SELECT account_id, sum(amount) AS total FROM ledger_entries GROUP BY account_id) s
            ON s.account_id = a.id
         WHERE a.balance <> coalesce(s.total, 0)""",
    "balance_equals_last_balance_after": """
        SELECT format('account %s has balance %s version %s, last entry says %s at version %s',
                      a.id, a.balance, a.version, last.balance_after, last.account_version) AS detail
          FROM accounts a LEFT JOIN LATERAL (
                SELECT balance_after, account_version FROM ledger_entries e
                 WHERE e.account_id = a.id ORDER BY account_version DESC LIMIT 1) last ON true
         WHERE a.balance <> coalesce(last.balance_after, 0) OR a.version <> coalesce(last.account_version, 0)""",
    "running_balances_chain": """
        SELECT format('entry %s: previous %s + %s <> %s', id, previous, amount, balance_after) AS detail
          FROM (SELECT id, amount, balance_after, account_version,
                       lag(balance_after, 1, 0::bigint) OVER w AS previous,
                       lag(account_version, 1, 0::bigint) OVER w AS previous_version
                  FROM ledger_entries WINDOW w AS (PARTITION BY account_id ORDER BY account_version)) chain
         WHERE balance_after <> previous + amount OR account_version <> previous_version + 1""",
    # The money in escrow is the held escrows: per currency over every
    # escrow account (the retired shared ones included) ...
    "escrow_accounts_equal_held_escrows": """
        SELECT format('%s escrow accounts hold %s, held escrows total %s', c.currency,
                      coalesce(a.total, 0), coalesce(h.total, 0)) AS detail
          FROM (SELECT currency FROM accounts WHERE kind = 'escrow' UNION SELECT currency FROM escrows) c
          LEFT JOIN (SELECT currency, sum(balance) AS total FROM accounts WHERE kind = 'escrow' GROUP BY currency) a
            ON a.currency = c.currency
          LEFT JOIN (SELECT currency, sum(amount) AS total FROM escrows WHERE status = 'held' GROUP BY currency) h
            ON h.currency = c.currency
         WHERE coalesce(a.total, 0) <> coalesce(h.total, 0)""",
    # ... and escrow by escrow: its own account holds its amount while it
    # is held and nothing once closed (an escrow closed before accounts
    # were per escrow has none), in its currency; no account without one.
    "each_escrow_account_holds_its_escrow": """
        SELECT format('escrow of target %s (%s %s %s) has account %s holding %s %s',
                      coalesce(e.target_id, a.escrow_target_id), e.status, e.amount, e.currency,
                      a.id, a.balance, a.currency) AS detail
          FROM escrows e
          FULL JOIN (SELECT * FROM accounts WHERE kind = 'escrow' AND escrow_target_id IS NOT NULL) a
            ON a.escrow_target_id = e.target_id
         WHERE e.id IS NULL
            OR coalesce(a.balance, 0) <> CASE WHEN e.status = 'held' THEN e.amount ELSE 0 END
            OR a.currency <> e.currency""",
    "one_escrow_per_target": """
        SELECT format('target %s has %s escrows', target_id, count(*)) AS detail
          FROM escrows GROUP BY target_id HAVING count(*) > 1""",
    # Every escrow ever held is held, released or refunded: per currency,
    # what holds moved into escrow accounts is the amount of all escrows,
    # and what releases and refunds moved out is the amount of the closed.
    "escrows_held_released_refunded_are_all": """
        SELECT format('%s: holds moved %s into escrow for escrows of %s; closes moved %s out for closed escrows of %s',
                      coalesce(e.currency, l.currency), coalesce(l.held_in, 0), coalesce(e.total, 0),
                      coalesce(l.closed_out, 0), coalesce(e.closed, 0)) AS detail
          FROM (SELECT currency, sum(amount) AS total,
                       coalesce(sum(amount) FILTER (WHERE status IN ('released', 'refunded')), 0) AS closed
                  FROM escrows GROUP BY currency) e
          FULL JOIN (SELECT a.currency,
                            coalesce(sum(x.amount) FILTER (WHERE x.kind = 'escrow_hold'), 0) AS held_in,
                            coalesce(-sum(x.amount) FILTER (WHERE x.kind IN ('escrow_release', 'escrow_refund')), 0)
                              AS closed_out
                       FROM ledger_entries x JOIN accounts a ON a.id = x.account_id
                      WHERE a.kind = 'escrow' GROUP BY a.currency) l
            ON l.currency = e.currency
         WHERE coalesce(l.held_in, 0) <> coalesce(e.total, 0) OR coalesce(l.closed_out, 0) <> coalesce(e.closed, 0)""",
    # A user's pending-payouts account holds exactly the user's pending
    # withdrawals, per currency.
    "pending_payouts_equal_pending_withdrawals": """
        SELECT format('user %s (%s): pending-payouts account holds %s, pending withdrawals total %s',
                      coalesce(a.user_id, w.user_id), coalesce(a.currency, w.currency),
                      coalesce(a.balance, 0), coalesce(w.total, 0)) AS detail
          FROM (SELECT user_id, currency, balance FROM accounts WHERE kind = 'pending_payout') a
          FULL JOIN (SELECT user_id, currency, sum(amount) AS total FROM withdrawals
                      WHERE status = 'pending' GROUP BY user_id, currency) w
            ON w.user_id = a.user_id AND w.currency = a.currency
         WHERE coalesce(a.balance, 0) <> coalesce(w.total, 0)""",
    # No withdrawal paid twice: each paid one has exactly one payout
    # transaction, the one that closed it, and no other has any.
    "each_paid_withdrawal_paid_once": """
        SELECT format('withdrawal %s (%s) has %s payout transactions', coalesce(CAST(w.id AS text), p.reference),
                      coalesce(w.status, 'missing'),
                      coalesce(p.payouts, 0)) AS detail
          FROM withdrawals w
          FULL JOIN (SELECT reference, count(*) AS payouts, min(CAST(id AS text)) AS tx
                       FROM ledger_transactions WHERE kind = 'payout' GROUP BY reference) p
            ON p.reference = CAST(w.id AS text)
         WHERE w.id IS NULL
            OR coalesce(p.payouts, 0) <> CASE WHEN w.status = 'paid' THEN 1 ELSE 0 END
            OR (w.status = 'paid' AND p.tx <> CAST(w.close_transaction_id AS text))""",
    "accounts_sum_to_zero": """
        SELECT format('%s accounts sum to %s', currency, sum(balance)) AS detail
          FROM accounts GROUP BY currency HAVING sum(balance) <> 0""",
}

SHOWN = 5


@dataclasses.dataclass(frozen=True)
class CheckResult:
    name: str
    violations: int
    detail: str

    @property
    def ok(self) -> bool:
        return self.violations == 0


async def snapshot(uow: UnitOfWork) -> None:
    """Must run first in the unit of work."""
    await uow.execute(sa.text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"))


async def run(uow: UnitOfWork) -> list[CheckResult]:
    results = []
    for name, query in CHECKS.items():
        rows = (await uow.execute(sa.text(
            f"SELECT count(*) OVER () AS total, detail FROM ({query}) offenders LIMIT {SHOWN}"))).all()
        total = rows[0].total if rows else 0
        results.append(CheckResult(name, total, "; ".join(r.detail for r in rows)))
    return results
