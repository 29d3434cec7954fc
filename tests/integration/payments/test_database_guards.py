"""The database itself refuses what would corrupt the ledger, whatever the
code above it does (raw SQL, bypassing the service)."""
import uuid

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from adtech.payments.v1 import payments_pb2 as pb
from common.db import CHECK_VIOLATION, FOREIGN_KEY_VIOLATION, UNIQUE_VIOLATION, sqlstate
from tests.integration.payments.conftest import new_id

APPEND_ONLY, UNBALANCED, STALE_ENTRY, ESCROW_CLOSED, UNEXPLAINED = "PL001", "PL002", "PL003", "PL004", "PL005"


async def _refused(payments, *statements, **params) -> str | None:
    with pytest.raises(DBAPIError) as caught:
        async with payments.engine.begin() as conn:
            for statement in statements:
                await conn.execute(sa.text(statement), params)
    return sqlstate(caught.value)


async def _some_entry(payments) -> str:
    user = new_id()
    await payments.deposit(user, 100)
    return str(await payments.scalar("""SELECT e.id FROM ledger_entries e JOIN accounts a ON a.id = e.account_id
                                         WHERE a.user_id = CAST(:u AS uuid)""", u=user))


async def test_updating_an_entry_is_refused(payments):
    entry = await _some_entry(payments)
    assert await _refused(payments, "UPDATE ledger_entries SET amount = 1 WHERE id = CAST(:e AS uuid)",
                          e=entry) == APPEND_ONLY


async def test_deleting_an_entry_is_refused(payments):
    entry = await _some_entry(payments)
    assert await _refused(payments, "DELETE FROM ledger_entries WHERE id = CAST(:e AS uuid)", e=entry) == APPEND_ONLY


async def test_unbalanced_transaction_is_refused_at_commit(payments):
    user = new_id()
    await payments.deposit(user, 100)
    account = await payments.scalar("SELECT id FROM accounts WHERE user_id = CAST(:u AS uuid)", u=user)
    tx = str(uuid.uuid4())
    state = await _refused(
        payments,
        "INSERT INTO ledger_transactions (id, kind) VALUES (CAST(:tx AS uuid), 'deposit')",
        "UPDATE accounts SET balance = balance + 5, version = version + 1 WHERE id = :a",
        """INSERT INTO ledger_entries (transaction_id, account_id, kind, amount, balance_after, account_version)
           SELECT CAST(:tx AS uuid), id, 'deposit', 5, balance, version FROM accounts WHERE id = :a""",
        tx=tx, a=account)
    assert state == UNBALANCED
    assert (await payments.wallet(user)).balance == 100


async def test_entry_that_misstates_its_account_balance_is_refused(payments):
    user = new_id()
    await payments.deposit(user, 100)
    account = await payments.scalar("SELECT id FROM accounts WHERE user_id = CAST(:u AS uuid)", u=user)
    state = await _refused(
        payments,
        "INSERT INTO ledger_transactions (id, kind) VALUES (CAST(:tx AS uuid), 'deposit')",
        """INSERT INTO ledger_entries (transaction_id, account_id, kind, amount, balance_after, account_version)
           VALUES (CAST(:tx AS uuid), :a, 'deposit', 5, 105, 99)""", tx=str(uuid.uuid4()), a=account)
    assert state == STALE_ENTRY


async def test_wallet_balance_below_zero_is_refused(payments):
    user = new_id()
    await payments.deposit(user, 100)
    assert await _refused(payments, "UPDATE accounts SET balance = -1 WHERE user_id = CAST(:u AS uuid)",
                          u=user) == CHECK_VIOLATION


async def test_second_escrow_for_a_target_is_refused(payments):
    advertiser, target = new_id(), new_id()
    await payments.deposit(advertiser, 100)
    await payments.hold(target, advertiser, 10)
    state = await _refused(payments, """
        INSERT INTO escrows (id, target_id, decision_id, advertiser_id, publisher_id, amount, currency, hold_transaction_id)
        SELECT gen_random_uuid(), target_id, gen_random_uuid(), advertiser_id, publisher_id, amount, currency,
               hold_transaction_id FROM escrows WHERE target_id = CAST(:t AS uuid)""", t=target)
    assert state == UNIQUE_VIOLATION


async def test_closed_escrow_cannot_be_reopened(payments):
    advertiser, target = new_id(), new_id()
    await payments.deposit(advertiser, 100)
    await payments.hold(target, advertiser, 10)
    await payments.call("RefundEscrow", pb.RefundEscrowRequest(target_id=target))
    assert await _refused(payments, """UPDATE escrows SET status = 'held', fee = NULL, close_transaction_id = NULL
                                        WHERE target_id = CAST(:t AS uuid)""", t=target) == ESCROW_CLOSED


async def test_balance_change_without_an_entry_is_refused_at_commit(payments):
    user = new_id()
    await payments.deposit(user, 100)
    state = await _refused(payments, """UPDATE accounts SET balance = balance + 5, version = version + 1
                                         WHERE user_id = CAST(:u AS uuid)""", u=user)
    assert state == UNEXPLAINED
    assert (await payments.wallet(user)).balance == 100


async def test_account_opened_with_a_balance_but_no_entry_is_refused_at_commit(payments):
    state = await _refused(payments, """INSERT INTO accounts (kind, user_id, currency, balance, version)
                                         VALUES ('wallet', CAST(:u AS uuid), 'USD', 100, 1)""", u=new_id())
    assert state == UNEXPLAINED


async def test_escrow_account_for_a_target_without_escrow_is_refused(payments):
    state = await _refused(payments, """INSERT INTO accounts (kind, escrow_target_id, currency)
                                         VALUES ('escrow', CAST(:t AS uuid), 'USD')""", t=new_id())
    assert state == FOREIGN_KEY_VIOLATION


async def test_second_escrow_account_for_a_target_is_refused(payments):
    advertiser, target = new_id(), new_id()
    await payments.deposit(advertiser, 100)
    await payments.hold(target, advertiser, 10)
    state = await _refused(payments, """INSERT INTO accounts (kind, escrow_target_id, currency)
                                         VALUES ('escrow', CAST(:t AS uuid), 'EUR')""", t=target)
    assert state == UNIQUE_VIOLATION


async def test_shared_escrow_account_can_hold_nothing(payments):
    state = await _refused(payments, """INSERT INTO accounts (kind, currency, balance, version)
                                         VALUES ('escrow', 'XTS', 5, 1)""")
    assert state == CHECK_VIOLATION


async def test_only_fee_and_funding_accounts_are_sharded(payments):
    state = await _refused(payments, """INSERT INTO accounts (kind, user_id, currency, shard)
                                         VALUES ('wallet', CAST(:u AS uuid), 'USD', 3)""", u=new_id())
    assert state == CHECK_VIOLATION
