"""Campaigns' settlement messages may arrive any number of times, in any
order, at once: against the real payments service a target's escrow is
released once or refunded once, never both and never twice, whatever the
redelivery (settlements.settlement_handlers, the handlers the outbox relay
calls). The ledger reconciles after each."""
import asyncio
import itertools

import pytest

from adtech.payments.v1 import payments_pb2 as ppb
from common.outbox import Message
from services.campaigns.domain import REFUND_TOPIC
from services.campaigns.publication import RELEASE_TOPIC
from services.campaigns.settlements import settlement_handlers
from tests.integration.payments.conftest import ADMIN
from tests.integration.publication.conftest import FEE, PAYOUT, PRICE, new_id, start_payments

RELEASE, REFUND = RELEASE_TOPIC, REFUND_TOPIC
_IDS = itertools.count(1)


@pytest.fixture(scope="module")
async def payments(pg_server, data_dir):
    service, channel, client = await start_payments(pg_server, data_dir)
    yield client
    await channel.close()
    await client.engine.dispose()
    await service.stop(0.5)


@pytest.fixture(scope="module")
def handlers(payments):
    return settlement_handlers(payments.stub)


class Held:
    """An escrow of PRICE held for a fresh target."""

    def __init__(self, payments):
        self.payments = payments
        self.target_id, self.advertiser_id, self.publisher_id = new_id(), new_id(), new_id()

    async def hold(self) -> "Held":
        await self.payments.deposit(self.advertiser_id, PRICE)
        await self.payments.open_wallet(self.publisher_id)
        await self.payments.hold(self.target_id, self.advertiser_id, PRICE, publisher_id=self.publisher_id)
        return self

    async def status(self) -> str:
        return (await self.payments.call("GetEscrow", ppb.GetEscrowRequest(target_id=self.target_id), ADMIN)).escrow.status

    async def balances(self) -> tuple[int, int, int]:
        advertiser = await self.payments.wallet(self.advertiser_id)
        return advertiser.balance, advertiser.held, (await self.payments.wallet(self.publisher_id)).balance


async def deliver(handlers, topic: str, held: Held) -> None:
    """One delivery of the message campaigns' outbox holds for the target."""
    message = Message(next(_IDS), topic, held.target_id, {"target_id": held.target_id}, attempts=1)
    assert await handlers[topic](message) is False  # the message ends: delivered


RELEASED = ("released", (0, 0, PAYOUT))
REFUNDED = ("refunded", (PRICE, 0, 0))


@pytest.mark.parametrize("deliveries, outcome", [
    ((RELEASE, RELEASE), RELEASED),
    ((REFUND, REFUND), REFUNDED),
    ((RELEASE, REFUND), RELEASED),
    ((REFUND, RELEASE), REFUNDED),
    ((RELEASE, RELEASE, REFUND, REFUND), RELEASED),
    ((REFUND, RELEASE, REFUND, RELEASE), REFUNDED),
], ids=["release-release", "refund-refund", "release-refund", "refund-release", "release-release-refund-refund",
        "refund-release-refund-release"])
async def test_each_escrow_moves_once_whatever_is_redelivered_in_order(payments, handlers, deliveries, outcome):
    held = await Held(payments).hold()
    for topic in deliveries:
        await deliver(handlers, topic, held)
    assert (await held.status(), await held.balances()) == outcome
    await payments.assert_reconciled()


@pytest.mark.parametrize("deliveries", [
    (RELEASE, RELEASE, RELEASE), (REFUND, REFUND, REFUND), (RELEASE, REFUND, RELEASE, REFUND)],
    ids=["releases", "refunds", "releases-and-refunds"])
async def test_each_escrow_moves_once_when_redeliveries_arrive_at_once(payments, handlers, deliveries):
    escrows = [await Held(payments).hold() for _ in range(5)]
    await asyncio.gather(*(deliver(handlers, topic, held) for held in escrows for topic in deliveries))
    for held in escrows:
        assert (await held.status(), await held.balances()) in (RELEASED, REFUNDED)
        if REFUND not in deliveries:
            assert await held.status() == "released"
        if RELEASE not in deliveries:
            assert await held.status() == "refunded"
    await payments.assert_reconciled()


async def test_the_fee_of_a_release_delivered_twice_is_taken_once(payments, handlers):
    held = await Held(payments).hold()
    fee_before = await _fees(payments)
    await asyncio.gather(deliver(handlers, RELEASE, held), deliver(handlers, RELEASE, held))
    await deliver(handlers, RELEASE, held)
    assert await _fees(payments) - fee_before == FEE


async def _fees(payments) -> int:
    return await payments.scalar(
        "SELECT COALESCE(sum(e.amount), 0) FROM ledger_entries e JOIN accounts a ON a.id = e.account_id"
        " WHERE a.kind = 'platform_fee'")
