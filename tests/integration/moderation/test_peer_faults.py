"""A peer step that fails with an unexpected error (a dropped database
connection, before or after its COMMIT) says nothing about whether it
committed: the saga repeats it, and the step answers from its record. It is
never compensated as if it had been refused."""
import pytest

from adtech.campaigns.v1 import campaigns_pb2, campaigns_pb2_grpc
from common.auth import acting_as
from common.bootstrap import Assembly, start_service
from common.clients import open_channel
from common.db import Database, database_url_for
from services.campaigns.api import CampaignsServicer
from services.campaigns.domain import BookingRules
from services.campaigns.usecases.campaigns import Campaigns
from services.campaigns.usecases.steps import CampaignSteps
from services.campaigns.usecases.targets import Targets
from tests import harness
from tests.harness import eventually
from tests.integration.moderation.conftest import assert_consistent
from tests.integration.moderation.test_approve import approve, escrow_of, target_of, wallet
from tests.integration.moderation.test_saga_faults import settled


def fail_once(real, *, after_commit: bool):
    """`real`, except that its first call loses the database connection,
    before doing anything or after it committed."""
    calls = []

    async def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1 and not after_commit:
            raise ConnectionResetError("connection to the database lost")
        result = await real(*args, **kwargs)
        if len(calls) == 1:
            raise ConnectionResetError("connection lost after COMMIT was sent")
        return result
    flaky.calls = calls
    return flaky


class StepsWithOneFlaky:
    """The campaigns servicer's injected CampaignSteps, with one step (a
    public method) replaced by `flaky`; the rest is the real one."""

    def __init__(self, real: CampaignSteps, step: str, flaky):
        self._real, self._step, self._flaky = real, step, flaky

    def __getattr__(self, name):
        return self._flaky if name == self._step else getattr(self._real, name)


@pytest.mark.parametrize("after_commit", [False, True], ids=["before_commit", "after_commit"])
@pytest.mark.parametrize("step", ["reserve", "approve"])
async def test_lost_connection_in_a_campaigns_step_is_repeated_until_approved(stack, world, monkeypatch, step,
                                                                              after_commit):
    servicer = stack.servicer("campaigns")
    flaky = fail_once(getattr(servicer.steps, step), after_commit=after_commit)
    monkeypatch.setattr(servicer, "steps", StepsWithOneFlaky(servicer.steps, step, flaky))
    advertiser, campaign, target = await world.ready_to_approve(price=1_000, funds=5_000)
    await approve(world, target.id, wait_ms=0)
    final = await eventually(lambda: settled(world, target.id), timeout=15)
    # Repeated once (answered from its record when the first call committed), never compensated.
    assert (final.status, final.reason, len(flaky.calls)) == ("approved", "", 2)
    assert (await target_of(world, advertiser, campaign, target.id)).status == "approved"
    assert (await escrow_of(world, target.id)).status == "held"
    assert (await wallet(world, advertiser)).balance == 4_000
    await assert_consistent(stack)


@pytest.mark.parametrize("after_commit", [False, True], ids=["before_commit", "after_commit"])
async def test_lost_connection_in_hold_escrow_is_repeated_until_approved(stack, world, monkeypatch, after_commit):
    payments = stack.servicer("payments").payments  # the servicer's injected use cases
    flaky = fail_once(payments.hold_escrow, after_commit=after_commit)
    monkeypatch.setattr(payments, "hold_escrow", flaky)
    advertiser, _, target = await world.ready_to_approve(price=1_000, funds=5_000)
    await approve(world, target.id, wait_ms=0)
    final = await eventually(lambda: settled(world, target.id), timeout=15)
    assert (final.status, final.reason, len(flaky.calls)) == ("approved", "", 2)
    money = await wallet(world, advertiser)
    assert (money.balance, money.held) == (4_000, 1_000)
    await assert_consistent(stack)


async def test_lost_connection_in_a_cascade_refund_is_repeated(stack, world, monkeypatch):
    advertiser, campaign, target = await world.ready_to_approve(price=1_000, funds=5_000)
    await approve(world, target.id)
    payments = stack.servicer("payments").payments
    flaky = fail_once(payments.refund_escrow, after_commit=False)
    monkeypatch.setattr(payments, "refund_escrow", flaky)
    with acting_as(advertiser):
        await world.campaigns.CancelTarget(campaigns_pb2.CancelTargetRequest(campaign_id=campaign.id, target_id=target.id))
    await assert_consistent(stack)
    assert (await escrow_of(world, target.id)).status == "refunded" and len(flaky.calls) == 2
    money = await wallet(world, advertiser)
    assert (money.balance, money.held) == (5_000, 0)


async def test_lost_database_connection_answers_unavailable_not_internal(stack, world):
    """Campaigns served exactly as its main wires it, except that the
    Database it is given (its constructor's dependency) points at a port
    where no PostgreSQL listens: every statement loses its connection."""
    import grpc

    from services.campaigns.publication import PublicationPolicy
    from services.campaigns.telegram import TelegramChannels
    from services.campaigns.usecases.accounts import TelegramAccounts
    from services.campaigns.usecases.consent import Consent
    from services.campaigns.usecases.publication import Publication

    unreachable = Database(database_url_for(f"postgresql://adtech@127.0.0.1:{harness.free_port()}/postgres",
                                            stack.databases["campaigns"]))
    rules = BookingRules(min_lead_ms=30_000)
    channels = TelegramChannels(harness.TELEGRAM["telegram_api_url"], harness.TELEGRAM["telegram_bot_token"])
    servicer = CampaignsServicer(Campaigns(unreachable, channels), Targets(unreachable, rules=rules),
                                 CampaignSteps(unreachable, rules=rules),
                                 Publication(unreachable, channels, PublicationPolicy()),
                                 TelegramAccounts(unreachable, channels, link_ttl_s=600), Consent(unreachable))
    running = await start_service("campaigns", stack.settings("campaigns"), Assembly(registrations=[
        (campaigns_pb2_grpc.add_CampaignsServiceServicer_to_server, servicer, "adtech.campaigns.v1.CampaignsService")]),
        "127.0.0.1:0")
    channel = open_channel(f"127.0.0.1:{running.port}", harness.INTERNAL_TOKEN, 10_000)
    try:
        _, _, target = await world.ready_to_approve()
        with pytest.raises(grpc.aio.AioRpcError) as refused, acting_as(world.admin):
            await campaigns_pb2_grpc.CampaignsServiceStub(channel).GetTargetSnapshot(
                campaigns_pb2.GetTargetSnapshotRequest(target_id=target.id))
    finally:
        await channel.close()
        await running.stop(0.5)
        await unreachable.dispose()
    assert (refused.value.code(), refused.value.details()) == (
        grpc.StatusCode.UNAVAILABLE, "a dependency is unavailable; retry")
