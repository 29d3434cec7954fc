"""Races against the real server: N callers via asyncio.gather, exactly one
effect in the database, no deadlock, no negative balance."""
import asyncio

import grpc

from adtech.payments.v1 import payments_pb2 as pb
from common.db import Database
from common.grpc_errors import reason_of
from services.payments import domain
from services.payments.store import holds
from tests.integration.payments.conftest import new_id


async def test_fifty_parallel_identical_holds_make_one_escrow_and_one_debit(payments):
    advertiser, target, decision, publisher = new_id(), new_id(), new_id(), new_id()
    await payments.deposit(advertiser, 1000)
    replies = await asyncio.gather(*(payments.hold(target, advertiser, 300, decision_id=decision,
                                                   publisher_id=publisher) for _ in range(50)))
    assert len({r.escrow.id for r in replies}) == 1
    assert await payments.scalar("SELECT count(*) FROM escrows WHERE target_id = CAST(:t AS uuid)", t=target) == 1
    assert await payments.scalar("""
        SELECT count(*) FROM ledger_entries e JOIN accounts a ON a.id = e.account_id
         WHERE a.user_id = CAST(:u AS uuid) AND e.kind = 'escrow_hold'""", u=advertiser) == 1
    wallet = await payments.wallet(advertiser)
    assert (wallet.balance, wallet.held) == (700, 300)
    await payments.assert_reconciled()


async def test_twelve_parallel_holds_against_a_wallet_covering_five_hold_exactly_five(payments):
    advertiser = new_id()
    await payments.deposit(advertiser, 500)
    results = await asyncio.gather(*(payments.hold(new_id(), advertiser, 100) for _ in range(12)),
                                   return_exceptions=True)
    held = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(held) == 5 and len(refused) == 7
    assert all(r.code() == grpc.StatusCode.FAILED_PRECONDITION for r in refused)
    wallet = await payments.wallet(advertiser)
    assert (wallet.balance, wallet.held) == (0, 500)
    assert await payments.scalar("SELECT min(balance_after) FROM ledger_entries e JOIN accounts a "
                                 "ON a.id = e.account_id WHERE a.user_id = CAST(:u AS uuid)", u=advertiser) >= 0
    await payments.assert_reconciled()


async def test_parallel_release_and_refund_of_one_escrow_exactly_one_wins(payments):
    for _ in range(5):
        advertiser, publisher, target = new_id(), new_id(), new_id()
        await payments.deposit(advertiser, 1000)
        await payments.hold(target, advertiser, 1000, publisher_id=publisher)
        release, refund = await asyncio.gather(
            payments.call("ReleaseEscrow", pb.ReleaseEscrowRequest(target_id=target)),
            payments.call("RefundEscrow", pb.RefundEscrowRequest(target_id=target)), return_exceptions=True)
        released, refunded = not isinstance(release, BaseException), not isinstance(refund, BaseException)
        assert released != refunded, (release, refund)  # exactly one wins; either may
        winner, loser, closed = (release, refund, "released") if released else (refund, release, "refunded")
        # The loser is refused because the winner closed the escrow, and
        # every party's money agrees with whichever won.
        assert (loser.code(), reason_of(loser), loser.details()) == (
            grpc.StatusCode.FAILED_PRECONDITION, "escrow_closed", f"escrow for target {target} is already {closed}")
        assert winner.escrow.status == closed
        assert (await payments.call("GetEscrow", pb.GetEscrowRequest(target_id=target))).escrow.status == closed
        paid, returned = (await payments.wallet(publisher)).balance, (await payments.wallet(advertiser)).balance
        assert (paid, returned) == ((900, 0) if released else (0, 1000))
    await payments.assert_reconciled()


async def test_holds_and_refunds_across_shared_wallets_do_not_deadlock(payments):
    advertisers = [new_id() for _ in range(4)]
    for advertiser in advertisers:
        await payments.deposit(advertiser, 10_000)
    targets = [(new_id(), advertisers[i % 4], advertisers[(i + 1) % 4]) for i in range(24)]

    async def hold_then_settle(i, target, advertiser, publisher):
        await payments.hold(target, advertiser, 100, publisher_id=publisher)
        method, request = (("ReleaseEscrow", pb.ReleaseEscrowRequest(target_id=target)) if i % 2 else
                           ("RefundEscrow", pb.RefundEscrowRequest(target_id=target)))
        await payments.call(method, request)

    await asyncio.wait_for(asyncio.gather(*(hold_then_settle(i, *t) for i, t in enumerate(targets))), 30)
    await payments.assert_reconciled()


async def test_hold_that_finds_its_target_locked_waits_then_answers_the_winners_escrow(payments):
    """The winner here is the hold itself (`holds.attempt`, the store's
    public statement), run in a unit of work whose transaction stays open:
    the service's hold of the same decision finds the target lock taken,
    queues behind it, and answers the escrow the winner committed without
    moving money again."""
    advertiser, target, decision, publisher = new_id(), new_id(), new_id(), new_id()
    await payments.deposit(advertiser, 1000)
    terms = domain.HoldTerms(target_id=target, decision_id=decision, advertiser_id=advertiser, publisher_id=publisher,
                             amount=300, currency="USD")
    db = Database(payments.engine.url.render_as_string(hide_password=False), pool_size=1)
    try:
        async with db.unit_of_work("winning_hold") as uow:
            [won] = await holds.attempt(uow, [terms])
            assert won.locked and won.recorded.outcome == "held"
            winner_escrow = won.escrow.id
            late = asyncio.ensure_future(payments.hold(target, advertiser, 300, decision_id=decision,
                                                       publisher_id=publisher))
            await asyncio.sleep(0.3)
            assert not late.done()
            await uow.commit()
    finally:
        await db.dispose()
    assert (await asyncio.wait_for(late, 5)).escrow.id == winner_escrow
    wallet = await payments.wallet(advertiser)
    assert (wallet.balance, wallet.held) == (700, 300)
    await payments.assert_reconciled()
