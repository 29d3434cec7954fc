"""DESIGN.md "No global hot row on the money path": holds, releases and
refunds of different targets lock no common row, under load and while
another transaction sits on one escrow's rows; each still moves its money
exactly once and the ledger reconciles."""
import asyncio
import collections

import sqlalchemy as sa

from adtech.payments.v1 import payments_pb2 as pb
from services.payments import domain
from tests.integration.payments.conftest import new_id

PRICE = 300
# Far beyond a hold's own work; a hold that queued on a row held by the
# test's open transaction would wait forever.
PROMPTLY_S = 5


async def _funded(payments, amount: int) -> str:
    user = new_id()
    await payments.deposit(user, amount)
    return user


async def _escrow_account_balance(payments, target: str) -> int:
    return await payments.scalar(
        "SELECT balance FROM accounts WHERE kind = 'escrow' AND escrow_target_id = CAST(:t AS uuid)", t=target)


async def _release(payments, target: str):
    return await payments.call("ReleaseEscrow", pb.ReleaseEscrowRequest(target_id=target))


async def _refund(payments, target: str):
    return await payments.call("RefundEscrow", pb.RefundEscrowRequest(target_id=target))


def _target_in_another_shard(target: str) -> str:
    while True:
        other = new_id()
        if domain.ledger_shard(other) != domain.ledger_shard(target):
            return other


async def test_fifty_concurrent_holds_on_fifty_wallets_each_hold_once(payments):
    advertisers = await asyncio.gather(*(_funded(payments, 1_000) for _ in range(50)))
    targets = [new_id() for _ in advertisers]
    replies = await asyncio.gather(*(payments.hold(t, a, PRICE) for t, a in zip(targets, advertisers)))
    assert len({r.escrow.id for r in replies}) == 50
    for target, advertiser in zip(targets, advertisers):
        wallet = await payments.wallet(advertiser)
        assert (wallet.balance, wallet.held) == (700, PRICE)
        assert await _escrow_account_balance(payments, target) == PRICE
    await payments.assert_reconciled()


async def test_fifty_concurrent_holds_on_one_hot_wallet_each_hold_once_even_sent_twice(payments):
    advertiser = await _funded(payments, 50 * PRICE)
    holds = [(new_id(), new_id(), new_id()) for _ in range(50)]  # target, decision, publisher
    replies = await asyncio.gather(*(payments.hold(t, advertiser, PRICE, decision_id=d, publisher_id=p)
                                     for t, d, p in holds + holds))
    assert len({r.escrow.id for r in replies}) == 50
    wallet = await payments.wallet(advertiser)
    assert (wallet.balance, wallet.held) == (0, 50 * PRICE)
    assert await payments.scalar("""
        SELECT count(*) FROM ledger_entries e JOIN accounts a ON a.id = e.account_id
         WHERE a.user_id = CAST(:u AS uuid) AND e.kind = 'escrow_hold'""", u=advertiser) == 50
    await payments.assert_reconciled()


async def test_concurrent_releases_and_refunds_of_different_targets_each_move_once(payments):
    advertisers = await asyncio.gather(*(_funded(payments, 10_000) for _ in range(5)))
    publishers = [new_id() for _ in range(5)]
    targets = [(new_id(), advertisers[i % 5], publishers[i % 5]) for i in range(50)]
    await asyncio.gather(*(payments.hold(t, a, 1_000, publisher_id=p) for t, a, p in targets))
    fee_before = await payments.scalar("SELECT coalesce(sum(balance), 0) FROM accounts WHERE kind = 'platform_fee'")
    # Each close is sent twice, as a relay's redelivery would.
    closes = [(_release if i % 2 else _refund)(payments, t) for i, (t, _, _) in enumerate(targets)]
    await asyncio.gather(*closes, *[(_release if i % 2 else _refund)(payments, t)
                                    for i, (t, _, _) in enumerate(targets)])
    for i, publisher in enumerate(publishers):
        released = sum(1 for j, (_, _, p) in enumerate(targets) if p == publisher and j % 2)
        assert (await payments.wallet(publisher)).balance == released * 900
    for advertiser in advertisers:
        wallet = await payments.wallet(advertiser)
        refunded = sum(1 for j, (_, a, _) in enumerate(targets) if a == advertiser and not j % 2)
        assert (wallet.balance, wallet.held) == (10_000 - 10 * 1_000 + refunded * 1_000, 0)
    for target, _, _ in targets:
        assert await _escrow_account_balance(payments, target) == 0
    fees = await payments.scalar("SELECT coalesce(sum(balance), 0) FROM accounts WHERE kind = 'platform_fee'")
    assert fees - fee_before == 25 * 100
    shards = {domain.ledger_shard(t) for i, (t, _, _) in enumerate(targets) if i % 2}
    assert await payments.scalar("""
        SELECT count(DISTINCT shard) FROM accounts a JOIN ledger_entries e ON e.account_id = a.id
         JOIN ledger_transactions t ON t.id = e.transaction_id
         WHERE a.kind = 'platform_fee' AND t.reference = ANY(:refs)""",
        refs=[t for i, (t, _, _) in enumerate(targets) if i % 2]) == len(shards) > 1
    await payments.assert_reconciled()


async def test_money_moves_of_other_targets_proceed_while_one_escrows_rows_are_locked(payments):
    advertiser, publisher, other_publisher = await _funded(payments, 10_000), new_id(), new_id()
    locked, to_refund = new_id(), new_id()
    to_release = _target_in_another_shard(locked)
    for target, payee in ((locked, publisher), (to_release, other_publisher), (to_refund, publisher)):
        await payments.hold(target, advertiser, 1_000, publisher_id=payee)
    async with payments.engine.connect() as conn:
        # Another transaction sits on the first escrow's own account and on
        # the platform fee shard its release would credit.
        await conn.execute(sa.text("""
            SELECT id FROM accounts
             WHERE (kind = 'escrow' AND escrow_target_id = CAST(:t AS uuid))
                OR (kind = 'platform_fee' AND shard = :shard)
            FOR UPDATE"""), {"t": locked, "shard": domain.ledger_shard(locked)})
        # Its release waits (holding its publisher's wallet, the first lock
        # of its order) ...
        stuck = asyncio.ensure_future(_release(payments, locked))
        await asyncio.sleep(0.2)
        # ... while a hold, a release and a refund of other targets on the
        # same advertiser's wallet are done.
        await asyncio.wait_for(asyncio.gather(
            payments.hold(new_id(), advertiser, 1_000, publisher_id=publisher),
            _release(payments, to_release), _refund(payments, to_refund)), PROMPTLY_S)
        assert not stuck.done()
        await conn.rollback()
    assert (await asyncio.wait_for(stuck, PROMPTLY_S)).escrow.status == "released"
    wallet = await payments.wallet(advertiser)
    assert (wallet.balance, wallet.held) == (10_000 - 3 * 1_000, 1_000)
    assert [(await payments.wallet(p)).balance for p in (publisher, other_publisher)] == [900, 900]
    await payments.assert_reconciled()


async def test_concurrent_deposits_spread_over_the_external_funding_shards(payments):
    users = [new_id() for _ in range(50)]
    replies = await asyncio.gather(*(payments.deposit(u, 100) for u in users))
    shards = collections.Counter(domain.ledger_shard(r.transaction_id) for r in replies)
    assert len(shards) > 1
    assert await payments.scalar("""
        SELECT count(DISTINCT a.shard) FROM ledger_entries e JOIN accounts a ON a.id = e.account_id
         WHERE a.kind = 'external' AND e.transaction_id = ANY(CAST(:txs AS uuid[]))""",
        txs=[r.transaction_id for r in replies]) == len(shards)
    await payments.assert_reconciled()
