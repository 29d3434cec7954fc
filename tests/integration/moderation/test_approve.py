"""Approve and reject through moderation, against real campaigns and payments."""
import grpc
import pytest

from adtech.campaigns.v1 import campaigns_pb2
from adtech.moderation.v1 import moderation_pb2
from adtech.payments.v1 import payments_pb2
from common.auth import acting_as
from common.grpc_errors import reason_of
from common.timestamps import to_timestamp
from tests.factories import new_actor
from tests.harness import free_slot
from tests.integration.moderation.conftest import assert_consistent

WAIT = 5000


async def approve(world, target_id, wait_ms=WAIT, actor=None):
    with acting_as(actor or world.admin):
        return await world.moderation.Approve(moderation_pb2.ApproveRequest(target_id=target_id, wait_ms=wait_ms))


async def target_of(world, advertiser, campaign, target_id):
    with acting_as(advertiser):
        return (await world.campaigns.GetTarget(campaigns_pb2.GetTargetRequest(
            campaign_id=campaign.id, target_id=target_id))).target


async def wallet(world, user):
    with acting_as(world.admin):
        return (await world.payments.GetWallet(payments_pb2.GetWalletRequest(user_id=user.id))).wallet


async def escrow_of(world, target_id):
    with acting_as(world.admin):
        return (await world.payments.GetEscrow(payments_pb2.GetEscrowRequest(target_id=target_id))).escrow


async def test_approve_holds_escrow_and_creates_one_post_job(stack, world):
    advertiser, campaign, target = await world.ready_to_approve(price=1_500, funds=10_000)
    reply = await approve(world, target.id)
    assert reply.settled and reply.decision.status == "approved" and not reply.already_approved
    approved = await target_of(world, advertiser, campaign, target.id)
    assert approved.status == "approved" and approved.post_job.id == reply.decision.post_job_id
    escrow = await escrow_of(world, target.id)
    assert (escrow.id, escrow.status, escrow.amount) == (reply.decision.escrow_id, "held", 1_500)
    money = await wallet(world, advertiser)
    assert (money.balance, money.held) == (8_500, 1_500)
    await assert_consistent(stack)


async def test_second_approve_returns_same_escrow_and_post_job(stack, world):
    _, _, target = await world.ready_to_approve()
    first = await approve(world, target.id)
    second = await approve(world, target.id)
    assert second.already_approved and second.settled
    assert (second.decision.escrow_id, second.decision.post_job_id) == (first.decision.escrow_id, first.decision.post_job_id)


async def test_approve_of_a_target_not_submitted_is_refused_and_writes_nothing(stack, world):
    advertiser = new_actor("advertiser")
    channel = await world.approved_channel()
    await world.fund(advertiser, 5_000)
    campaign = await world.active_campaign(advertiser)
    with acting_as(advertiser):
        target = (await world.campaigns.CreateTarget(campaigns_pb2.CreateTargetRequest(
            campaign_id=campaign.id, channel_id=channel.id,
            scheduled_at=to_timestamp(free_slot())))).target
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await approve(world, target.id)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert reason_of(refused.value) == "target_not_submitted"
    assert "Target cannot be approved from status pending" in refused.value.details()
    with pytest.raises(grpc.aio.AioRpcError) as none, acting_as(world.admin):
        await world.moderation.GetDecision(moderation_pb2.GetDecisionRequest(target_id=target.id))
    assert none.value.code() == grpc.StatusCode.NOT_FOUND
    assert (await wallet(world, advertiser)).balance == 5_000


async def test_approve_of_a_target_cancelled_before_it_says_target_cancelled_as_the_saga_would(stack, world):
    advertiser = new_actor("advertiser")
    channel = await world.approved_channel()
    campaign = await world.active_campaign(advertiser)
    with acting_as(advertiser):
        target = (await world.campaigns.CreateTarget(campaigns_pb2.CreateTargetRequest(
            campaign_id=campaign.id, channel_id=channel.id,
            scheduled_at=to_timestamp(free_slot())))).target
        await world.campaigns.CancelTarget(campaigns_pb2.CancelTargetRequest(
            campaign_id=campaign.id, target_id=target.id))
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await approve(world, target.id)
    assert (refused.value.code(), reason_of(refused.value), refused.value.details()) == (
        grpc.StatusCode.FAILED_PRECONDITION, "target_cancelled", "Target cannot be approved from status cancelled")


async def test_approve_of_unknown_target_is_not_found(world):
    import uuid
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await approve(world, str(uuid.uuid4()))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


async def test_only_an_admin_may_approve(world):
    _, _, target = await world.ready_to_approve()
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await approve(world, target.id, actor=new_actor("advertiser"))
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_insufficient_funds_fails_the_saga_and_submits_the_target_again(stack, world):
    advertiser, campaign, target = await world.ready_to_approve(price=2_000, funds=1_000)
    reply = await approve(world, target.id)
    assert reply.settled and (reply.decision.status, reply.decision.reason) == ("failed", "insufficient_funds")
    assert (await target_of(world, advertiser, campaign, target.id)).status == "submitted"
    money = await wallet(world, advertiser)
    assert (money.balance, money.held) == (1_000, 0)
    await assert_consistent(stack)


async def test_after_a_failed_saga_a_new_approve_starts_a_new_one(stack, world):
    advertiser, _, target = await world.ready_to_approve(price=2_000, funds=1_000)
    failed = await approve(world, target.id)
    await world.fund(advertiser, 5_000)
    retried = await approve(world, target.id)
    assert retried.decision.status == "approved" and retried.decision.decision_id != failed.decision.decision_id
    assert (await wallet(world, advertiser)).balance == 4_000
    await assert_consistent(stack)


async def test_reject_of_submitted_target_records_the_decision(world):
    advertiser, campaign, target = await world.ready_to_approve()
    with acting_as(world.admin):
        rejected = (await world.moderation.Reject(moderation_pb2.RejectRequest(target_id=target.id, reason="Off-topic"))).target
        decision = (await world.moderation.GetDecision(moderation_pb2.GetDecisionRequest(target_id=target.id))).decision
    assert (rejected.status, rejected.moderation_reason) == ("rejected", "Off-topic")
    assert (decision.decision, decision.status, decision.reason) == ("reject", "rejected", "Off-topic")


async def test_reject_while_approving_is_refused_with_conflict(stack, world, gate):
    hold = gate("payments", "HoldEscrow")
    _, _, target = await world.ready_to_approve()
    started = await approve(world, target.id, wait_ms=0)
    await hold.reached.wait()
    with pytest.raises(grpc.aio.AioRpcError) as refused, acting_as(world.admin):
        await world.moderation.Reject(moderation_pb2.RejectRequest(target_id=target.id, reason="late"))
    assert refused.value.code() == grpc.StatusCode.ABORTED
    hold.opened.set()
    final = await approve(world, target.id)
    assert final.decision.decision_id == started.decision.decision_id and final.decision.status == "approved"
    await assert_consistent(stack)


async def test_queue_lists_submitted_targets_oldest_first(world):
    advertiser = new_actor("advertiser")
    channel = await world.approved_channel()
    campaign = await world.active_campaign(advertiser)
    first = await world.submitted_target(advertiser, campaign, channel)
    second = await world.submitted_target(advertiser, campaign, channel)
    seen, cursor = [], ""
    with acting_as(world.admin):
        while True:
            page = await world.moderation.ListQueue(moderation_pb2.ListQueueRequest(limit=50, cursor=cursor))
            seen += [item.target.id for item in page.items]
            cursor = page.next_cursor
            if not cursor:
                break
    assert seen.index(first.id) < seen.index(second.id)


async def test_refund_of_an_escrow_already_released_ends_without_dead_letter(stack, world):
    advertiser, campaign, target = await world.ready_to_approve(price=1_000, funds=1_000)
    await approve(world, target.id)
    with acting_as(world.admin):
        released = (await world.payments.ReleaseEscrow(payments_pb2.ReleaseEscrowRequest(target_id=target.id))).escrow
    with acting_as(advertiser):
        await world.campaigns.CancelTarget(campaigns_pb2.CancelTargetRequest(campaign_id=campaign.id, target_id=target.id))
    # Drains the outboxes and finds no dead letter; verify rightly reports
    # the one thing made by hand: money released for a target never published.
    await assert_consistent(stack, expected={"released_escrow_has_completed_target": [
        f"{target.id}: escrow released, target cancelled"]})
    assert released.status == "released" and (await escrow_of(world, target.id)).status == "released"
    assert (await wallet(world, advertiser)).balance == 0
