"""Deposits: admin only, idempotent per key, one effect under concurrency."""
import asyncio
import uuid

import grpc
import pytest

from adtech.payments.v1 import payments_pb2 as pb
from common.auth import Actor
from tests.integration.payments.conftest import ADMIN, new_id, refusal


async def test_deposit_credits_the_wallet_from_external_funding(payments):
    user = new_id()
    reply = await payments.deposit(user, 2500, reference="wire 42")
    assert (reply.wallet.balance, reply.wallet.held, reply.replayed) == (2500, 0, False)
    assert (await payments.wallet(user)).balance == 2500
    await payments.assert_reconciled()


async def test_same_key_and_body_replays_without_second_credit(payments):
    user, key = new_id(), new_id()
    first = await payments.deposit(user, 700, key)
    again = await payments.deposit(user, 700, key)
    assert again.transaction_id == first.transaction_id and again.replayed
    assert again.wallet.balance == 700
    assert (await payments.wallet(user)).balance == 700


async def test_same_key_with_other_body_is_already_exists(payments):
    user, key = new_id(), new_id()
    await payments.deposit(user, 700, key)
    code, reason = await refusal(payments.deposit(user, 701, key))
    assert (code, reason) == (grpc.StatusCode.ALREADY_EXISTS, "idempotency_key_reused")
    code, reason = await refusal(payments.deposit(new_id(), 700, key))
    assert reason == "idempotency_key_reused"
    assert (await payments.wallet(user)).balance == 700


async def test_concurrent_deposits_with_one_key_credit_once(payments):
    user, key = new_id(), new_id()
    replies = await asyncio.gather(*(payments.deposit(user, 300, key) for _ in range(20)))
    assert len({r.transaction_id for r in replies}) == 1
    assert sum(not r.replayed for r in replies) == 1
    assert (await payments.wallet(user)).balance == 300
    await payments.assert_reconciled()


async def test_deposit_is_admin_only(payments):
    user = new_id()
    request = pb.DepositRequest(user_id=user, amount=10, idempotency_key=new_id())
    for role in ("advertiser", "publisher", "system"):
        code, _ = await refusal(payments.call("Deposit", request, Actor(user, role)))
        assert code == grpc.StatusCode.PERMISSION_DENIED


async def test_non_positive_amount_and_missing_key_are_invalid(payments):
    for amount, key in ((0, new_id()), (-5, new_id()), (10, "")):
        code, _ = await refusal(payments.deposit(new_id(), amount, key or None) if key else
                                payments.call("Deposit", pb.DepositRequest(user_id=new_id(), amount=amount),
                                              Actor(str(uuid.uuid4()), "admin")))
        assert code == grpc.StatusCode.INVALID_ARGUMENT


async def test_wallet_of_a_user_without_a_row_is_empty(payments):
    wallet = await payments.wallet(new_id())
    assert (wallet.balance, wallet.held, wallet.currency) == (0, 0, "USD")


async def test_a_deposit_in_another_currency_is_refused_and_credits_nothing(payments):
    user = new_id()
    await payments.open_wallet(user)
    code, reason = await refusal(payments.call("Deposit", pb.DepositRequest(
        user_id=user, amount=1000, currency="EUR", idempotency_key=new_id()), ADMIN))
    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "currency_not_supported")
    assert (await payments.wallet(user)).balance == 0
    assert await payments.scalar("SELECT count(*) FROM accounts WHERE currency = 'EUR'") == 0


@pytest.mark.parametrize("method, request_of, actor_of", [
    ("HoldEscrow", lambda user: pb.HoldEscrowRequest(target_id=new_id(), decision_id=new_id(), advertiser_id=user,
                                                     publisher_id=new_id(), amount=1, currency="EUR"), None),
    ("RequestWithdrawal", lambda user: pb.RequestWithdrawalRequest(
        amount=1, currency="EUR", destination="IBAN DE00 1", idempotency_key=new_id()),
     lambda user: Actor(user, "publisher")),
])
async def test_every_money_move_in_another_currency_is_refused_as_not_supported(payments, method, request_of,
                                                                               actor_of):
    user = new_id()
    await payments.deposit(user, 100)
    call = payments.call(method, request_of(user), *([actor_of(user)] if actor_of else []))
    assert await refusal(call) == (grpc.StatusCode.FAILED_PRECONDITION, "currency_not_supported")
    assert (await payments.wallet(user)).balance == 100


async def test_wallet_is_readable_by_its_owner_only(payments):
    user = new_id()
    own = await payments.call("GetWallet", pb.GetWalletRequest(user_id=user), Actor(user, "advertiser"))
    assert own.wallet.user_id == user
    code, _ = await refusal(payments.call("GetWallet", pb.GetWalletRequest(user_id=user),
                                          Actor(new_id(), "advertiser")))
    assert code == grpc.StatusCode.PERMISSION_DENIED


async def test_deposit_overflowing_the_balance_is_invalid_not_internal(payments_alone):
    user = new_id()  # a server of its own: no other test's money in its ledger
    await payments_alone.deposit(user, 2**63 - 1)
    code, _ = await refusal(payments_alone.deposit(user, 1))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert (await payments_alone.wallet(user)).balance == 2**63 - 1


async def test_reference_with_nul_character_is_invalid(payments):
    code, _ = await refusal(payments.deposit(new_id(), 1, reference="a\x00b"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
