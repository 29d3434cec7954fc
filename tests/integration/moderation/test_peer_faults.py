"""A peer step that fails with an unexpected error (a dropped database
connection, before or after its COMMIT) says nothing about whether it
committed: the saga repeats it, and the step answers from its record. It is
never compensated as if it had been refused."""
import pytest

from adtech.campaigns.v1 import campaigns_pb2
from common.auth import acting_as
from services.campaigns.usecases.targets import Targets
from services.campaigns.usecases.steps import CampaignSteps
from services.payments import usecases as payments_usecases
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


@pytest.mark.parametrize("after_commit", [False, True], ids=["before_commit", "after_commit"])
@pytest.mark.parametrize("step", ["reserve", "approve"])
async def test_lost_connection_in_a_campaigns_step_is_repeated_until_approved(stack, world, monkeypatch, step,
                                                                              after_commit):
    flaky = fail_once(getattr(CampaignSteps, step), after_commit=after_commit)
    monkeypatch.setattr(CampaignSteps, step, flaky)
    advertiser, campaign, target = await world.ready_to_approve(price=1_000, funds=5_000)
    await approve(world, target.id, wait_ms=0)
    final = await eventually(lambda: settled(world, target.id), timeout=15)
    assert final.status == "approved" and len(flaky.calls) >= 2
    assert (await target_of(world, advertiser, campaign, target.id)).status == "approved"
    assert (await escrow_of(world, target.id)).status == "held"
    assert (await wallet(world, advertiser)).balance == 4_000
    await assert_consistent(stack)


@pytest.mark.parametrize("after_commit", [False, True], ids=["before_commit", "after_commit"])
async def test_lost_connection_in_hold_escrow_is_repeated_until_approved(stack, world, monkeypatch, after_commit):
    flaky = fail_once(payments_usecases.Payments.hold_escrow, after_commit=after_commit)
    monkeypatch.setattr(payments_usecases.Payments, "hold_escrow", flaky)
    advertiser, _, target = await world.ready_to_approve(price=1_000, funds=5_000)
    await approve(world, target.id, wait_ms=0)
    final = await eventually(lambda: settled(world, target.id), timeout=15)
    assert final.status == "approved"
    money = await wallet(world, advertiser)
    assert (money.balance, money.held) == (4_000, 1_000)
    await assert_consistent(stack)


async def test_lost_connection_in_a_cascade_refund_is_repeated(stack, world, monkeypatch):
    advertiser, campaign, target = await world.ready_to_approve(price=1_000, funds=5_000)
    await approve(world, target.id)
    flaky = fail_once(payments_usecases.Payments.refund_escrow, after_commit=False)
    monkeypatch.setattr(payments_usecases.Payments, "refund_escrow", flaky)
    with acting_as(advertiser):
        await world.campaigns.CancelTarget(campaigns_pb2.CancelTargetRequest(campaign_id=campaign.id, target_id=target.id))
    await assert_consistent(stack)
    assert (await escrow_of(world, target.id)).status == "refunded" and len(flaky.calls) >= 2
    money = await wallet(world, advertiser)
    assert (money.balance, money.held) == (5_000, 0)


async def test_lost_database_connection_answers_unavailable_not_internal(stack, world, monkeypatch):
    import grpc
    from adtech.campaigns.v1 import campaigns_pb2 as cpb

    async def broken(*args, **kwargs):
        raise ConnectionResetError("connection to the database lost")
    monkeypatch.setattr(Targets, "snapshot", broken)
    with pytest.raises(grpc.aio.AioRpcError) as refused, acting_as(world.admin):
        await world.campaigns.GetTargetSnapshot(cpb.GetTargetSnapshotRequest(target_id=str(__import__("uuid").uuid4())))
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
