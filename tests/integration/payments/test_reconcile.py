"""Reconcile names each broken invariant. The ledger is corrupted here by
switching triggers off (replica mode), which only a superuser can do; this
module has its own database, so the damage stays here."""
import sqlalchemy as sa

from tests.integration.payments.conftest import new_id


async def _corrupt(payments, *statements, **params):
    async with payments.engine.begin() as conn:
        await conn.execute(sa.text("SET LOCAL session_replication_role = replica"))
        for statement in statements:
            await conn.execute(sa.text(statement), params)


async def _failing(payments) -> dict[str, int]:
    report = await payments.reconcile()
    return {c.name: c.violations for c in report.checks if not c.ok}


async def test_reconcile_lists_every_check_and_passes_on_a_clean_ledger(payments):
    advertiser, target = new_id(), new_id()
    await payments.deposit(advertiser, 100)
    await payments.hold(target, advertiser, 60)
    report = await payments.reconcile()
    assert report.ok
    assert [(c.name, c.ok, c.violations, c.detail) for c in report.checks] == [(name, True, 0, "") for name in (
        "transactions_sum_to_zero", "transactions_have_entries", "no_negative_balance",
        "balance_equals_sum_of_entries", "balance_equals_last_balance_after", "running_balances_chain",
        "escrow_accounts_equal_held_escrows", "each_escrow_account_holds_its_escrow", "one_escrow_per_target",
        "escrows_held_released_refunded_are_all", "pending_payouts_equal_pending_withdrawals",
        "each_paid_withdrawal_paid_once", "accounts_sum_to_zero")]


async def test_reconcile_reports_a_balance_no_entry_explains(payments):
    user = new_id()
    await payments.deposit(user, 100)
    await _corrupt(payments, "UPDATE accounts SET balance = balance + 5 WHERE user_id = CAST(:u AS uuid)", u=user)
    failing = await _failing(payments)
    assert failing["balance_equals_sum_of_entries"] == 1
    assert failing["balance_equals_last_balance_after"] == 1
    assert not (await payments.reconcile()).ok


async def test_reconcile_reports_an_escrow_its_account_does_not_cover(payments):
    advertiser, target = new_id(), new_id()
    await payments.deposit(advertiser, 100)
    await payments.hold(target, advertiser, 60)
    await _corrupt(payments, "UPDATE escrows SET amount = amount + 1 WHERE target_id = CAST(:t AS uuid)", t=target)
    failing = await _failing(payments)
    assert failing["escrow_accounts_equal_held_escrows"] == 1
    assert failing["each_escrow_account_holds_its_escrow"] == 1


async def test_reconcile_reports_money_left_in_a_closed_escrows_account(payments_alone):
    payments = payments_alone  # a ledger of its own: no other test's corruption in its totals
    advertiser, target, other = new_id(), new_id(), new_id()
    await payments.deposit(advertiser, 100)
    await payments.hold(target, advertiser, 60)
    await payments.hold(other, advertiser, 40)
    # The escrow closes but its money stays, and another held escrow claims
    # it: the currency's total still matches, the escrows do not.
    await _corrupt(payments, "UPDATE escrows SET status = 'refunded', close_transaction_id = hold_transaction_id "
                             "WHERE target_id = CAST(:t AS uuid)",
                   "UPDATE escrows SET amount = amount + 60 WHERE target_id = CAST(:o AS uuid)", t=target, o=other)
    checks = {c.name: c for c in (await payments.reconcile()).checks}
    assert "USD" not in checks["escrow_accounts_equal_held_escrows"].detail
    assert target in checks["each_escrow_account_holds_its_escrow"].detail
    assert other in checks["each_escrow_account_holds_its_escrow"].detail
