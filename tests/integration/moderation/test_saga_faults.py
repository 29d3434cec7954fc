"""The approve saga under faults: peers down, a process killed mid-saga,
races with cancel and pause, every step delivered twice, and late
duplicates of every step after the saga has moved on."""
import asyncio
import signal

import sqlalchemy as sa

from adtech.campaigns.v1 import campaigns_pb2
from adtech.moderation.v1 import moderation_pb2
from common.auth import acting_as
from common.db import Database, database_url_for
from common.outbox import Message
from common.timestamps import to_timestamp
from tests.harness import eventually, free_slot
from tests.integration.moderation.conftest import assert_consistent
from tests.integration.moderation.test_approve import approve, escrow_of, target_of, wallet
from tests.stack import wait_serving


async def decision_of(world, target_id):
    with acting_as(world.admin):
        return (await world.moderation.GetDecision(moderation_pb2.GetDecisionRequest(target_id=target_id))).decision


async def settled(world, target_id):
    decision = await decision_of(world, target_id)
    return decision if decision.status in ("approved", "failed") else None


async def set_campaign(world, advertiser, campaign, action):
    with acting_as(advertiser):
        await world.campaigns.ChangeCampaignStatus(campaigns_pb2.ChangeCampaignStatusRequest(
            campaign_id=campaign.id, action=action))


async def test_with_payments_down_approve_answers_running_and_completes_when_it_returns(stack, world):
    advertiser, campaign, target = await world.ready_to_approve()
    await stack.stop_service("payments")
    try:
        # Campaigns is up, so the saga reserves the target at once and then
        # waits at the hold, which is repeated while payments is down: after
        # the wait it is `reserved`, not settled, the target locked for it.
        reply = await approve(world, target.id, wait_ms=1_000)
        assert (reply.settled, reply.already_approved, reply.decision.status) == (False, False, "reserved")
        assert (reply.decision.escrow_id, reply.decision.post_job_id) == ("", "")
        assert (await decision_of(world, target.id)).status == "reserved"
        assert (await target_of(world, advertiser, campaign, target.id)).status == "approving"
    finally:
        await stack.start_service("payments")
    final = await eventually(lambda: settled(world, target.id), timeout=15)
    assert final.status == "approved"
    await assert_consistent(stack)


async def test_campaign_cancelled_between_hold_and_approval_refunds_the_escrow(stack, world, gate):
    approval = gate("campaigns", "ApproveTarget")
    advertiser, campaign, target = await world.ready_to_approve(price=1_000, funds=3_000)
    await approve(world, target.id, wait_ms=0)
    await approval.reached.wait()
    await set_campaign(world, advertiser, campaign, "cancel")
    approval.opened.set()
    final = await eventually(lambda: settled(world, target.id))
    assert final.status == "failed" and final.reason == "target_cancelled"
    assert (await target_of(world, advertiser, campaign, target.id)).status == "cancelled"
    assert (await escrow_of(world, target.id)).status == "refunded"
    await assert_consistent(stack)
    money = await wallet(world, advertiser)
    assert (money.balance, money.held) == (3_000, 0)


async def test_campaign_paused_after_reservation_does_not_stop_the_approval(stack, world, gate):
    hold = gate("payments", "HoldEscrow")
    advertiser, campaign, target = await world.ready_to_approve()
    await approve(world, target.id, wait_ms=0)
    await hold.reached.wait()
    await set_campaign(world, advertiser, campaign, "pause")
    hold.opened.set()
    final = await eventually(lambda: settled(world, target.id))
    assert final.status == "approved"
    assert (await target_of(world, advertiser, campaign, target.id)).status == "approved"
    await assert_consistent(stack)


async def test_relay_killed_between_hold_and_approval_completes_after_restart(stack, world):
    """Moderation runs as its own process. Payments is down at first, so the
    saga waits at `reserved`; then campaigns goes down and payments comes
    back, so it stops at `escrow_held` with ApproveTarget being retried.
    There the process is killed with SIGKILL; after a restart of both the
    saga completes with one escrow and one post job."""
    _, _, target = await world.ready_to_approve()
    await stack.stop_service("moderation")
    process = stack.service_process("moderation")
    peek = Database(database_url_for(stack.pg_server, stack.databases["moderation"]))
    try:
        await wait_serving(stack.address("moderation"))
        await stack.stop_service("payments")
        reply = await approve(world, target.id, wait_ms=0)
        await eventually(lambda: _status(peek, reply.decision.decision_id, "reserved"))
        await stack.stop_service("campaigns")
        await stack.start_service("payments")
        await eventually(lambda: _status(peek, reply.decision.decision_id, "escrow_held"), timeout=15)
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        await stack.start_service("campaigns")
        process = stack.service_process("moderation")
        await wait_serving(stack.address("moderation"))
        final = await eventually(lambda: settled(world, target.id), timeout=20)
        assert final.status == "approved"
    finally:
        await peek.dispose()
        process.send_signal(signal.SIGTERM)
        process.wait(10)
        for ctx in ("payments", "campaigns", "moderation"):
            if ctx not in stack.running:
                await stack.start_service(ctx)
    await assert_consistent(stack)


async def _status(db, decision_id, *wanted):
    async with db.unit_of_work("peek_decision") as uow:
        status = await uow.scalar(sa.text("SELECT status FROM decisions WHERE id = :d"), {"d": decision_id})
    return status in wanted


class Recording:
    """Wraps the relay's handlers: delivers every message `times` times and
    keeps each one for late replays."""

    def __init__(self, relay, times: int):
        self.relay, self.times = relay, times
        self.seen: list[Message] = []
        self.originals = dict(relay.handlers)
        for topic, handler in self.originals.items():
            relay.handlers[topic] = self._wrap(handler)

    def _wrap(self, handler):
        async def deliver(message):
            self.seen.append(message)
            done = False
            for _ in range(self.times):
                done = await handler(message)
            return done
        return deliver

    def restore(self):
        self.relay.handlers.update(self.originals)

    async def replay(self):
        for message in self.seen:
            try:
                await self.originals[message.topic](message)
            except Exception:
                pass  # a refusal of a late step is fine; an effect is not


def saga_relay(stack):
    return stack.servicer("moderation").saga.relay


async def test_every_step_delivered_twice_has_no_duplicate_effect(stack, world):
    recording = Recording(saga_relay(stack), times=2)
    try:
        advertiser, _, approved_target = await world.ready_to_approve(price=1_000, funds=1_500)
        _, _, poor_target = await world.ready_to_approve(price=5_000, funds=100)
        assert (await approve(world, approved_target.id)).decision.status == "approved"
        assert (await approve(world, poor_target.id)).decision.reason == "insufficient_funds"
    finally:
        recording.restore()
    assert (await wallet(world, advertiser)).balance == 500
    await assert_consistent(stack)


async def test_late_duplicates_of_every_step_change_nothing(stack, world, gate):
    recording = Recording(saga_relay(stack), times=1)
    try:
        # An approved saga, an insufficient-funds saga followed by a newer
        # successful one, and a saga compensated after a cancellation.
        adv1, _, t1 = await world.ready_to_approve(price=1_000, funds=1_000)
        adv2, c2, t2 = await world.ready_to_approve(price=2_000, funds=0)
        adv3, c3, t3 = await world.ready_to_approve(price=700, funds=700)
        await approve(world, t1.id)
        await approve(world, t2.id)
        await world.fund(adv2, 2_000)
        await approve(world, t2.id)
        approval = gate("campaigns", "ApproveTarget")
        await approve(world, t3.id, wait_ms=0)
        await approval.reached.wait()
        await set_campaign(world, adv3, c3, "cancel")
        approval.opened.set()
        await eventually(lambda: settled(world, t3.id))
    finally:
        recording.restore()
    before = [await _snapshot(world, a, t) for a, t in ((adv1, t1), (adv2, t2), (adv3, t3))]
    await recording.replay()
    await asyncio.sleep(0.2)
    after = [await _snapshot(world, a, t) for a, t in ((adv1, t1), (adv2, t2), (adv3, t3))]
    assert after == before
    assert [s[0] for s in after] == ["approved", "approved", "failed"]
    await assert_consistent(stack)


async def _snapshot(world, advertiser, target):
    decision = await decision_of(world, target.id)
    money = await wallet(world, advertiser)
    escrow = await escrow_of(world, target.id)
    return decision.status, decision.escrow_id, decision.post_job_id, escrow.status, money.balance, money.held


async def test_reject_delivered_twice_and_replayed_after_resubmit_rejects_once(stack, world):
    from adtech.moderation.v1 import moderation_pb2 as mpb
    recording = Recording(saga_relay(stack), times=2)
    try:
        advertiser, campaign, target = await world.ready_to_approve()
        with acting_as(world.admin):
            rejected = (await world.moderation.Reject(mpb.RejectRequest(target_id=target.id, reason="Off-topic"))).target
    finally:
        recording.restore()
    assert rejected.status == "rejected"
    with acting_as(advertiser):
        await world.campaigns.SubmitTarget(campaigns_pb2.SubmitTargetRequest(campaign_id=campaign.id, target_id=target.id))
    await recording.replay()  # the old reject step, late: answered from its record
    assert (await target_of(world, advertiser, campaign, target.id)).status == "submitted"
    decision = await decision_of(world, target.id)
    assert (decision.decision, decision.status) == ("reject", "rejected")


async def test_reject_refused_while_approving_is_recorded_as_failed_and_approve_stays_the_decision(stack, world, gate):
    from adtech.moderation.v1 import moderation_pb2 as mpb
    import grpc
    hold = gate("payments", "HoldEscrow")
    _, _, target = await world.ready_to_approve()
    await approve(world, target.id, wait_ms=0)
    await hold.reached.wait()
    try:
        with acting_as(world.admin):
            await world.moderation.Reject(mpb.RejectRequest(target_id=target.id, reason="late"))
        raise AssertionError("reject while approving must be refused")
    except grpc.aio.AioRpcError as refused:
        assert refused.code() == grpc.StatusCode.ABORTED
    hold.opened.set()
    final = await eventually(lambda: settled(world, target.id))
    assert (final.decision, final.status) == ("approve", "approved")
    await assert_consistent(stack)


async def test_retried_reject_joins_the_one_in_flight(stack, world, gate):
    import grpc
    from adtech.moderation.v1 import moderation_pb2 as mpb
    held = gate("campaigns", "RejectTarget")
    advertiser, campaign, target = await world.ready_to_approve()
    with acting_as(world.admin):
        try:
            await world.moderation.Reject(mpb.RejectRequest(target_id=target.id, reason="first", wait_ms=200))
            raise AssertionError("the first reject cannot have ended: campaigns is held")
        except grpc.aio.AioRpcError as pending:
            assert pending.code() == grpc.StatusCode.UNAVAILABLE
        retry = asyncio.ensure_future(world.moderation.Reject(mpb.RejectRequest(target_id=target.id, reason="second")))
        await asyncio.sleep(0.2)
        held.opened.set()
        rejected = (await retry).target
    assert (rejected.status, rejected.moderation_reason) == ("rejected", "first")
    decision = await decision_of(world, target.id)
    assert (decision.status, decision.reason) == ("rejected", "first")


async def test_refused_reject_leaves_the_target_undecided(stack, world):
    import grpc
    from adtech.moderation.v1 import moderation_pb2 as mpb
    advertiser = __import__("tests.factories", fromlist=["new_actor"]).new_actor("advertiser")
    channel = await world.approved_channel()
    campaign = await world.active_campaign(advertiser)
    with acting_as(advertiser):
        pending = (await world.campaigns.CreateTarget(campaigns_pb2.CreateTargetRequest(
            campaign_id=campaign.id, channel_id=channel.id,
            scheduled_at=to_timestamp(free_slot())))).target
    with acting_as(world.admin):
        try:
            await world.moderation.Reject(mpb.RejectRequest(target_id=pending.id, reason="not yet submitted"))
            raise AssertionError("a pending target cannot be rejected")
        except grpc.aio.AioRpcError as refused:
            assert refused.code() == grpc.StatusCode.FAILED_PRECONDITION
        try:
            await world.moderation.GetDecision(mpb.GetDecisionRequest(target_id=pending.id))
            raise AssertionError("a refused reject decided nothing")
        except grpc.aio.AioRpcError as none:
            assert none.code() == grpc.StatusCode.NOT_FOUND


async def test_a_lost_final_move_is_redone_from_campaigns_record_even_after_a_cancellation_refunded(stack, world):
    """The saga's moves after the hold commit without waiting for the disk,
    so a crash may lose the last one. Here the move to `approved` is lost
    (the decision is put back to `escrow_held` and its ApproveTarget
    message to pending, as the database would come back) after the
    advertiser cancelled and the escrow was refunded: redelivered,
    ApproveTarget answers from campaigns' record, and the decision ends
    approved with the same post job, never failed."""
    advertiser, campaign, target = await world.ready_to_approve(price=1_000, funds=1_000)
    approved = (await approve(world, target.id)).decision
    assert approved.status == "approved"
    await set_campaign(world, advertiser, campaign, "cancel")
    await eventually(lambda: _escrow_status(world, target.id, "refunded"))
    peek = Database(database_url_for(stack.pg_server, stack.databases["moderation"]))
    try:
        async with peek.unit_of_work("lose_the_last_move") as uow:
            await uow.execute(sa.text("UPDATE decisions SET status = 'escrow_held', post_job_id = NULL WHERE id = :d"),
                              {"d": approved.decision_id})
            await uow.execute(sa.text("""
                UPDATE outbox_messages SET status = 'pending', delivered_at = NULL, claimed_until = NULL,
                                           next_attempt_at = now()
                 WHERE id = (SELECT max(id) FROM outbox_messages WHERE aggregate_id = :t AND topic = :topic)"""),
                {"t": target.id, "topic": "approve.approve_target"})
            await uow.commit()
    finally:
        await peek.dispose()
    saga_relay(stack).wake()
    final = await eventually(lambda: settled(world, target.id), timeout=10)
    assert (final.status, final.post_job_id, final.escrow_id) == ("approved", approved.post_job_id, approved.escrow_id)


async def _escrow_status(world, target_id, wanted):
    return (await escrow_of(world, target_id)).status == wanted
