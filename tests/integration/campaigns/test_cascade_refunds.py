"""The cancellation cascade against a REAL payments service: the cancel and
its outbox rows commit together, and the relay has payments refund every
escrow held for a cancelled target, once."""
import pytest

from adtech.payments.v1 import payments_pb2 as ppb
from adtech.payments.v1 import payments_pb2_grpc
from adtech.campaigns.v1 import campaigns_pb2 as pb
from common.auth import SYSTEM, Actor, acting_as
from common.clients import open_channel
from tests import harness
from tests.integration.campaigns.conftest import admin, new_id, start_campaigns

PRICE = 5000
ADMIN = admin()


@pytest.fixture(scope="module")
async def wired(pg_server, data_dir):
    """Payments and campaigns, campaigns' relay pointed at payments."""
    name = await harness.fresh_database(pg_server, "payments")
    pay_settings = harness.settings_for("payments", pg_server, data_dir, payments_database=name)
    payments = await harness.start("payments", pay_settings)
    running, channel, client = await start_campaigns(pg_server, data_dir, payments_addr=f"127.0.0.1:{payments.port}")
    pay_channel = open_channel(f"127.0.0.1:{payments.port}", harness.INTERNAL_TOKEN, 10_000)
    yield client, payments_pb2_grpc.PaymentsServiceStub(pay_channel)
    await pay_channel.close()
    await channel.close()
    await client.engine.dispose()
    await running.stop(0.5)
    await payments.stop(0.5)


async def approved_with_escrow(campaigns, payments, owner=None):
    """A target approved by a decision whose escrow payments holds."""
    owner, campaign, target = await campaigns.submitted_target(owner)
    decision = new_id()
    snapshot = (await campaigns.reserve(target.id, decision)).snapshot
    await deposit(payments, owner.id)
    with acting_as(SYSTEM):
        escrow = (await payments.HoldEscrow(ppb.HoldEscrowRequest(
            target_id=target.id, decision_id=decision, advertiser_id=owner.id, publisher_id=snapshot.publisher_id,
            amount=snapshot.target.price, currency=snapshot.target.currency))).escrow
    await campaigns.approve(target.id, decision, escrow.id)
    return owner, campaign, target


async def deposit(payments, user_id):
    with acting_as(Actor(user_id, "advertiser")):  # the owner's first read opens the wallet
        await payments.GetWallet(ppb.GetWalletRequest(user_id=user_id))
    with acting_as(ADMIN):
        await payments.Deposit(ppb.DepositRequest(user_id=user_id, amount=PRICE, idempotency_key=new_id()))


async def escrow_status(payments, target_id):
    with acting_as(ADMIN):
        return (await payments.GetEscrow(ppb.GetEscrowRequest(target_id=target_id))).escrow.status


async def balance(payments, user_id):
    with acting_as(ADMIN):
        return (await payments.GetWallet(ppb.GetWalletRequest(user_id=user_id))).wallet.balance


async def test_cancelling_a_campaign_refunds_its_approved_targets_escrow(wired):
    campaigns, payments = wired
    owner, campaign, target = await approved_with_escrow(campaigns, payments)
    assert await balance(payments, owner.id) == 0
    await campaigns.change(campaign.id, "cancel", owner)
    assert await campaigns.status_of(target.id) == "cancelled"
    await harness.eventually(lambda: refunded(payments, target.id))
    assert await balance(payments, owner.id) == PRICE


async def test_cancelling_an_approved_target_refunds_its_escrow(wired):
    campaigns, payments = wired
    owner, campaign, target = await approved_with_escrow(campaigns, payments)
    await campaigns.call("CancelTarget", pb.CancelTargetRequest(campaign_id=campaign.id, target_id=target.id), admin())
    await harness.eventually(lambda: refunded(payments, target.id))
    assert await balance(payments, owner.id) == PRICE


async def test_cancelling_with_an_approving_target_refunds_a_hold_made_before(wired):
    campaigns, payments = wired
    owner, campaign, target = await campaigns.submitted_target()
    decision = new_id()
    snapshot = (await campaigns.reserve(target.id, decision)).snapshot
    await deposit(payments, owner.id)
    with acting_as(SYSTEM):
        await payments.HoldEscrow(ppb.HoldEscrowRequest(
            target_id=target.id, decision_id=decision, advertiser_id=owner.id, publisher_id=snapshot.publisher_id,
            amount=PRICE, currency="USD"))
    await campaigns.change(campaign.id, "cancel", owner)
    await harness.eventually(lambda: refunded(payments, target.id))
    assert await balance(payments, owner.id) == PRICE


async def test_refund_messages_are_delivered_and_not_resent(wired):
    campaigns, payments = wired
    owner, campaign, target = await approved_with_escrow(campaigns, payments)
    await campaigns.change(campaign.id, "cancel", owner)

    async def delivered():
        return await campaigns.scalar("SELECT status FROM outbox_messages WHERE aggregate_id = :t",
                                      t=target.id) == "delivered"
    await harness.eventually(delivered)
    assert await balance(payments, owner.id) == PRICE


async def refunded(payments, target_id):
    return await escrow_status(payments, target_id) == "refunded"
