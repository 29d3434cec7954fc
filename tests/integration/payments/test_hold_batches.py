"""Holds asked for at the same time are carried out together, in one
statement and one commit (Payments.hold_escrow, store/holds.py), and each
still gets exactly the answer it would have got alone: its own escrow, its
own refusal stating the balance it was refused on, a repeat answered from
the record; batches that share wallets never deadlock; a value one hold's
statement refuses fails that hold alone."""
import asyncio
import logging
import random

import asyncpg
import grpc
import pytest

from common.db import Database, ValueOutOfRange
from services.payments import domain
from services.payments.store import holds
from services.payments.usecases import Payments
from tests.harness import eventually
from tests.integration.payments.conftest import new_id


async def transactions_that_held(payments, targets: list[str]) -> int:
    """How many database transactions wrote the escrows of `targets` (rows
    one transaction wrote share its xmin)."""
    return await payments.scalar(
        "SELECT count(DISTINCT CAST(xmin AS text)) FROM escrows WHERE target_id = ANY(CAST(:t AS uuid[]))",
        t=targets)


async def test_forty_holds_on_forty_wallets_asked_together_each_hold_once_in_fewer_commits(payments):
    advertisers = [new_id() for _ in range(40)]
    for advertiser in advertisers:
        await payments.deposit(advertiser, 1_000)
    targets = [new_id() for _ in advertisers]
    replies = await asyncio.gather(*(payments.hold(t, a, 300) for t, a in zip(targets, advertisers)))
    assert [r.escrow.target_id for r in replies] == targets
    assert len({r.escrow.id for r in replies}) == 40
    for advertiser in advertisers:
        wallet = await payments.wallet(advertiser)
        assert (wallet.balance, wallet.held) == (700, 300)
    assert await transactions_that_held(payments, targets) < 40
    await payments.assert_reconciled()


async def test_holds_on_shared_wallets_in_any_order_hold_exactly_what_each_wallet_covers(payments, caplog):
    """Six wallets, each covering 4 holds of 100, get 10 holds each, asked
    for all at once in a shuffled order: batches carry holds of several
    wallets, asked in every order. Exactly 4 per wallet are held, the rest
    are refused stating the balance they met, and no statement ever
    deadlocked."""
    caplog.set_level(logging.INFO, logger="common.db")
    advertisers = [new_id() for _ in range(6)]
    for advertiser in advertisers:
        await payments.deposit(advertiser, 400)
    asked = [(new_id(), advertiser) for advertiser in advertisers for _ in range(10)]
    random.Random(7).shuffle(asked)
    results = await asyncio.wait_for(asyncio.gather(
        *(payments.hold(target, advertiser, 100) for target, advertiser in asked), return_exceptions=True), 30)
    outcome = dict(zip((target for target, _ in asked), results))
    for advertiser in advertisers:
        mine = [outcome[target] for target, owner in asked if owner == advertiser]
        held = [r for r in mine if not isinstance(r, BaseException)]
        refused = [r for r in mine if isinstance(r, grpc.aio.AioRpcError)]
        assert (len(held), len(refused)) == (4, 6)
        assert all(r.code() == grpc.StatusCode.FAILED_PRECONDITION and "balance 0" in r.details() for r in refused)
        wallet = await payments.wallet(advertiser)
        assert (wallet.balance, wallet.held) == (0, 400)
    assert not [r for r in caplog.records if "40P01" in r.getMessage()], "a hold statement deadlocked"
    await payments.assert_reconciled()


async def test_a_repeat_asked_together_with_its_first_hold_answers_the_same_escrow(payments):
    """The same decision's hold asked for ten times at once, next to other
    holds of the same wallet: the repeats never share a statement with the
    first, and all answer its one escrow."""
    advertiser, target, decision, publisher = new_id(), new_id(), new_id(), new_id()
    await payments.deposit(advertiser, 5_000)
    same = [payments.hold(target, advertiser, 500, decision_id=decision, publisher_id=publisher) for _ in range(10)]
    others = [payments.hold(new_id(), advertiser, 500) for _ in range(5)]
    replies = await asyncio.gather(*same, *others)
    assert len({r.escrow.id for r in replies[:10]}) == 1
    wallet = await payments.wallet(advertiser)
    assert (wallet.balance, wallet.held) == (2_000, 3_000)
    await payments.assert_reconciled()


@pytest.fixture
async def payments_in_process(payments):
    """The payments use cases on the service's database, in this process."""
    db = Database(payments.engine.url.render_as_string(hide_password=False), pool_size=4)
    try:
        yield Payments(db, 1000, hold_batch_size=32, hold_batches=1)
    finally:
        await db.dispose()


async def test_a_value_the_statement_refuses_fails_only_the_hold_that_sent_it(payments, payments_in_process,
                                                                              monkeypatch):
    """A batch whose statement fails on one hold's value is carried out
    again hold by hold, so the error reaches that caller alone."""
    poisoned = new_id()
    real_attempt = holds.attempt
    batch_sizes = []

    async def attempt(uow, asked, **kwargs):
        batch_sizes.append(len(asked))
        if any(terms.target_id == poisoned for terms in asked):
            raise ValueOutOfRange("a value given is not one that can be stored (22003)")
        return await real_attempt(uow, asked, **kwargs)

    monkeypatch.setattr(holds, "attempt", attempt)
    advertisers = [new_id() for _ in range(6)]
    for advertiser in advertisers:
        await payments.deposit(advertiser, 1_000)
    targets = [new_id() for _ in advertisers[:-1]] + [poisoned]

    def terms(target, advertiser):
        return domain.HoldTerms(target, new_id(), advertiser, new_id(), 100, "USD")

    results = await asyncio.gather(*(payments_in_process.hold_escrow(terms(t, a)) for t, a in zip(targets, advertisers)),
                                   return_exceptions=True)
    assert max(batch_sizes) > 1  # they did share a statement first
    assert [type(r).__name__ for r in results] == ["EscrowRow"] * 5 + ["InvalidInput"]
    for advertiser in advertisers[:-1]:
        assert (await payments.wallet(advertiser)).balance == 900
    assert (await payments.wallet(advertisers[-1])).balance == 1_000
    await payments.assert_reconciled()


async def test_a_wallet_another_move_holds_never_holds_up_the_holds_of_other_wallets(payments):
    """Another move keeps the busy wallet locked for a long while; four
    holds of it are under way, as many as hold statements run at once.
    A hold of another wallet, and a deposit to it, still go through at
    once; the busy wallet's holds go through once it is free."""
    busy, other = new_id(), new_id()
    await payments.deposit(busy, 1_000)
    await payments.deposit(other, 1_000)
    mover = await asyncpg.connect(payments.engine.url.set(drivername="postgresql").render_as_string(hide_password=False))
    try:
        async with mover.transaction():
            await mover.execute("SELECT 1 FROM accounts WHERE kind = 'wallet' AND user_id = $1 FOR UPDATE", busy)
            waiting = [asyncio.ensure_future(payments.hold(new_id(), busy, 100)) for _ in range(4)]
            await asyncio.sleep(0.3)
            assert not any(hold.done() for hold in waiting)
            reply = await asyncio.wait_for(payments.hold(new_id(), other, 100), 3)
            assert reply.escrow.status == "held"
            await asyncio.wait_for(payments.deposit(other, 50), 3)
            assert not any(hold.done() for hold in waiting)
        assert {r.escrow.status for r in await asyncio.wait_for(asyncio.gather(*waiting), 5)} == {"held"}
    finally:
        await mover.close()
    assert ((await payments.wallet(busy)).balance, (await payments.wallet(other)).balance) == (600, 950)
    await payments.assert_reconciled()


async def test_a_hold_statement_never_carries_two_holds_of_one_wallet_target_or_decision(payments):
    """Two debits of one wallet in one statement would be one; the store
    refuses to send them together, writing nothing."""
    advertiser = new_id()
    await payments.deposit(advertiser, 1_000)
    db = Database(payments.engine.url.render_as_string(hide_password=False), pool_size=1)
    try:
        one = domain.HoldTerms(new_id(), new_id(), advertiser, new_id(), 300, "USD")
        for other in (domain.HoldTerms(new_id(), new_id(), advertiser, new_id(), 300, "USD"),
                      domain.HoldTerms(one.target_id, new_id(), new_id(), new_id(), 300, "USD"),
                      domain.HoldTerms(new_id(), one.decision_id, new_id(), new_id(), 300, "USD")):
            async with db.single_statement("two_holds") as uow:
                with pytest.raises(ValueError):
                    await holds.attempt(uow, [one, other])
    finally:
        await db.dispose()
    assert (await payments.wallet(advertiser)).balance == 1_000


async def test_a_caller_that_stops_waiting_after_its_hold_left_gets_it_held_once_and_its_repeat_answered(
        payments, payments_in_process, monkeypatch):
    real_attempt = holds.attempt
    left = asyncio.Event()

    async def slow_attempt(uow, asked, **kwargs):
        left.set()
        await asyncio.sleep(0.2)
        return await real_attempt(uow, asked, **kwargs)

    monkeypatch.setattr(holds, "attempt", slow_attempt)
    advertiser = new_id()
    await payments.deposit(advertiser, 1_000)
    terms = domain.HoldTerms(new_id(), new_id(), advertiser, new_id(), 400, "USD")
    caller = asyncio.ensure_future(payments_in_process.hold_escrow(terms))
    await left.wait()
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    # The statement it sent went on and commits.
    async def debited():
        return (await payments.wallet(advertiser)).balance == 600

    await eventually(debited, timeout=5)
    escrow = await payments_in_process.hold_escrow(terms)
    assert (escrow.target_id, escrow.amount, escrow.status) == (terms.target_id, 400, "held")
    assert (await payments.wallet(advertiser)).balance == 600
    await payments.assert_reconciled()


def mover_dsn(payments) -> str:
    return payments.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


async def lock_wallet(mover: asyncpg.Connection, user_id: str) -> None:
    """Another move's lock on a wallet, held until `mover`'s transaction ends."""
    await mover.execute("SELECT 1 FROM accounts WHERE kind = 'wallet' AND user_id = $1 FOR UPDATE", user_id)


async def test_in_one_statement_a_hold_of_a_busy_wallet_is_skipped_and_the_others_are_decided(
        payments, payments_in_process):
    """One statement at a time (hold_batches=1), carrying a hold of a wallet
    another move holds and holds of free wallets: the free ones are decided
    at once; for the busy one nothing is written until its wallet is free."""
    busy, free = new_id(), [new_id() for _ in range(3)]
    for advertiser in (busy, *free):
        await payments.deposit(advertiser, 1_000)
    busy_terms = domain.HoldTerms(new_id(), new_id(), busy, new_id(), 100, "USD")
    mover = await asyncpg.connect(mover_dsn(payments))
    try:
        async with mover.transaction():
            await lock_wallet(mover, busy)
            waiting = asyncio.ensure_future(payments_in_process.hold_escrow(busy_terms))
            held = await asyncio.wait_for(asyncio.gather(*(payments_in_process.hold_escrow(
                domain.HoldTerms(new_id(), new_id(), advertiser, new_id(), 100, "USD")) for advertiser in free)), 3)
            assert {escrow.status for escrow in held} == {"held"}
            assert not waiting.done()
            for table, column in (("escrows", "target_id"), ("saga_steps", "target_id")):
                assert await payments.scalar(f"SELECT count(*) FROM {table} WHERE {column} = CAST(:t AS uuid)",
                                             t=busy_terms.target_id) == 0
        assert (await asyncio.wait_for(waiting, 5)).status == "held"
    finally:
        await mover.close()
    assert (await payments.wallet(busy)).balance == 900
    await payments.assert_reconciled()


async def test_holds_waiting_for_one_busy_wallet_never_take_the_sessions_other_moves_need(payments):
    """Four sessions in all, one statement of holds at a time; ten holds of
    one wallet that another move keeps locked wait for it. Holds of other
    wallets and a deposit still go through at once; the ten, once the
    wallet is free, each hold once."""
    db = Database(payments.engine.url.render_as_string(hide_password=False), pool_size=4)
    small = Payments(db, 1000, hold_batch_size=32, hold_batches=1)
    busy, other = new_id(), new_id()
    await payments.deposit(busy, 1_000)
    await payments.deposit(other, 1_000)
    mover = await asyncpg.connect(mover_dsn(payments))
    try:
        async with mover.transaction():
            await lock_wallet(mover, busy)
            waiting = [asyncio.ensure_future(small.hold_escrow(
                domain.HoldTerms(new_id(), new_id(), busy, new_id(), 50, "USD"))) for _ in range(10)]
            await asyncio.sleep(0.3)
            for _ in range(3):
                escrow = await asyncio.wait_for(small.hold_escrow(
                    domain.HoldTerms(new_id(), new_id(), other, new_id(), 100, "USD")), 3)
                assert escrow.status == "held"
            await asyncio.wait_for(small.deposit(other, 5, "USD", new_id(), ""), 3)
            assert not any(hold.done() for hold in waiting)
        assert {escrow.status for escrow in await asyncio.wait_for(asyncio.gather(*waiting), 10)} == {"held"}
    finally:
        await mover.close()
        await db.dispose()
    assert ((await payments.wallet(busy)).balance, (await payments.wallet(other)).balance) == (500, 705)
    await payments.assert_reconciled()
