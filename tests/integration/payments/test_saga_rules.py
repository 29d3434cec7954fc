"""DESIGN.md "Saga step rules" 3, 6 and 7, each with a late duplicate: the
repeat arrives after the world moved on (a deposit, a refund, a release)."""
import asyncio

import grpc

from adtech.payments.v1 import payments_pb2 as pb
from tests.integration.payments.conftest import new_id, refusal


async def test_late_hold_after_insufficient_funds_returns_same_refusal_even_after_deposit(payments):
    advertiser, target, decision, publisher = new_id(), new_id(), new_id(), new_id()
    await payments.deposit(advertiser, 100)
    code, reason = await refusal(payments.hold(target, advertiser, 500, decision_id=decision, publisher_id=publisher))
    assert reason == "insufficient_funds"
    await payments.deposit(advertiser, 1000)
    code, reason = await refusal(payments.hold(target, advertiser, 500, decision_id=decision, publisher_id=publisher))
    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "insufficient_funds")
    wallet = await payments.wallet(advertiser)
    assert (wallet.balance, wallet.held) == (1100, 0)


async def test_late_hold_repeats_the_recorded_refusal_message(payments):
    advertiser, target, decision, publisher = new_id(), new_id(), new_id(), new_id()
    hold = lambda: payments.hold(target, advertiser, 500, decision_id=decision, publisher_id=publisher)  # noqa: E731
    messages = []
    for amount in (0, 9999):
        if amount:
            await payments.deposit(advertiser, amount)
        try:
            await hold()
        except grpc.aio.AioRpcError as error:
            messages.append(error.details())
    assert messages == ["Insufficient funds: balance 0, required 500"] * 2


async def test_new_decision_for_the_target_may_hold_after_a_refused_one(payments):
    advertiser, target, publisher = new_id(), new_id(), new_id()
    await refusal(payments.hold(target, advertiser, 500, publisher_id=publisher))
    await payments.deposit(advertiser, 500)
    escrow = (await payments.hold(target, advertiser, 500, publisher_id=publisher)).escrow
    assert escrow.status == "held"


async def test_late_hold_after_refund_is_escrow_closed_not_same_escrow(payments):
    advertiser, target, decision, publisher = new_id(), new_id(), new_id(), new_id()
    await payments.deposit(advertiser, 1000)
    await payments.hold(target, advertiser, 500, decision_id=decision, publisher_id=publisher)
    await payments.call("RefundEscrow", pb.RefundEscrowRequest(target_id=target))
    code, reason = await refusal(payments.hold(target, advertiser, 500, decision_id=decision, publisher_id=publisher))
    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "escrow_closed")
    wallet = await payments.wallet(advertiser)
    assert (wallet.balance, wallet.held) == (1000, 0)


async def test_late_hold_after_release_is_escrow_closed(payments):
    advertiser, target, decision, publisher = new_id(), new_id(), new_id(), new_id()
    await payments.deposit(advertiser, 1000)
    await payments.hold(target, advertiser, 500, decision_id=decision, publisher_id=publisher)
    await payments.call("ReleaseEscrow", pb.ReleaseEscrowRequest(target_id=target))
    code, reason = await refusal(payments.hold(target, advertiser, 500, decision_id=decision, publisher_id=publisher))
    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "escrow_closed")
    assert (await payments.wallet(advertiser)).balance == 500


async def test_hold_by_new_decision_after_refund_is_escrow_closed(payments):
    advertiser, target = new_id(), new_id()
    await payments.deposit(advertiser, 1000)
    await payments.hold(target, advertiser, 500)
    await payments.call("RefundEscrow", pb.RefundEscrowRequest(target_id=target))
    code, reason = await refusal(payments.hold(target, advertiser, 500))
    assert reason == "escrow_closed"


async def test_late_refund_succeeds_without_second_credit(payments):
    advertiser, target = new_id(), new_id()
    await payments.deposit(advertiser, 1000)
    await payments.hold(target, advertiser, 500)
    first = await payments.call("RefundEscrow", pb.RefundEscrowRequest(target_id=target))
    late = await payments.call("RefundEscrow", pb.RefundEscrowRequest(target_id=target))
    assert (first.refunded, late.refunded, late.escrow.status) == (True, False, "refunded")
    assert (await payments.wallet(advertiser)).balance == 1000
    await payments.assert_reconciled()


async def test_refund_from_two_senders_at_once_credits_once(payments):
    advertiser, target = new_id(), new_id()
    await payments.deposit(advertiser, 1000)
    await payments.hold(target, advertiser, 500)
    replies = await asyncio.gather(*(payments.call("RefundEscrow", pb.RefundEscrowRequest(target_id=target))
                                     for _ in range(2)))
    assert sorted(r.refunded for r in replies) == [False, True]
    assert (await payments.wallet(advertiser)).balance == 1000
    await payments.assert_reconciled()


async def test_late_duplicate_hold_of_a_held_escrow_returns_it(payments):
    advertiser, target, decision, publisher = new_id(), new_id(), new_id(), new_id()
    await payments.deposit(advertiser, 1000)
    first = (await payments.hold(target, advertiser, 500, decision_id=decision, publisher_id=publisher)).escrow
    await payments.deposit(advertiser, 1)
    late = (await payments.hold(target, advertiser, 500, decision_id=decision, publisher_id=publisher)).escrow
    assert late.id == first.id
    assert (await payments.wallet(advertiser)).balance == 501
