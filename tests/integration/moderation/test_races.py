"""Many moderators at once, against real services: exactly one effect."""
import asyncio

import grpc
import pytest

from adtech.moderation.v1 import moderation_pb2
from common.auth import acting_as
from common.grpc_errors import reason_of
from tests.factories import new_actor
from tests.integration.moderation.conftest import assert_consistent
from tests.integration.moderation.test_approve import approve, escrow_of, target_of, wallet


async def test_twenty_concurrent_approves_share_one_escrow_and_post_job(stack, world):
    advertiser, _, target = await world.ready_to_approve(price=1_000, funds=1_000)
    replies = await asyncio.gather(*(approve(world, target.id) for _ in range(20)))
    assert {(r.decision.escrow_id, r.decision.post_job_id) for r in replies} == {
        (replies[0].decision.escrow_id, replies[0].decision.post_job_id)}
    assert replies[0].decision.post_job_id and all(r.decision.status == "approved" for r in replies)
    assert (await wallet(world, advertiser)).balance == 0
    await assert_consistent(stack)


async def test_approve_racing_reject_ends_with_one_outcome_everywhere(stack, world):
    cases = [await world.ready_to_approve(price=500, funds=500) for _ in range(8)]

    async def reject(target_id):
        try:
            with acting_as(world.admin):
                return await world.moderation.Reject(moderation_pb2.RejectRequest(target_id=target_id, reason="race"))
        except grpc.aio.AioRpcError as error:
            return error

    async def approve_or_refusal(target_id):
        try:
            return await approve(world, target_id)
        except grpc.aio.AioRpcError as error:
            return error

    def refusal(error) -> tuple:
        return error.code(), reason_of(error), error.details()

    results = await asyncio.gather(*(asyncio.gather(approve_or_refusal(t.id), reject(t.id)) for _, _, t in cases))
    for (advertiser, campaign, target), (approved, rejected) in zip(cases, results):
        final = await target_of(world, advertiser, campaign, target.id)
        money = await wallet(world, advertiser)
        with acting_as(world.admin):
            decision = (await world.moderation.GetDecision(moderation_pb2.GetDecisionRequest(
                target_id=target.id))).decision
        # Either may win the race; everything every service says must agree with the winner.
        assert final.status in ("approved", "rejected")
        if final.status == "approved":
            assert not isinstance(approved, grpc.aio.AioRpcError), refusal(approved)
            assert (approved.settled, approved.decision.status) == (True, "approved")
            # The reject was refused: while the target was being approved, or once it was.
            assert isinstance(rejected, grpc.aio.AioRpcError), rejected
            assert refusal(rejected) in {
                (grpc.StatusCode.ABORTED, "target_being_approved", "Target is being approved; try again later"),
                (grpc.StatusCode.FAILED_PRECONDITION, "invalid_transition",
                 "Target cannot be rejected from status approved")}
            assert (money.balance, money.held) == (0, 500)
            assert final.post_job.id == approved.decision.post_job_id
            assert (await escrow_of(world, target.id)).id == approved.decision.escrow_id
            assert (decision.decision, decision.status, decision.post_job_id, decision.escrow_id) == (
                "approve", "approved", approved.decision.post_job_id, approved.decision.escrow_id)
        else:
            assert isinstance(approved, grpc.aio.AioRpcError), approved
            assert refusal(approved) == (grpc.StatusCode.FAILED_PRECONDITION, "target_not_submitted",
                                         "Target cannot be approved from status rejected")
            assert not isinstance(rejected, grpc.aio.AioRpcError), refusal(rejected)
            assert (rejected.target.status, rejected.target.moderation_reason) == ("rejected", "race")
            assert (money.balance, money.held) == (500, 0) and not final.post_job.id
            with pytest.raises(grpc.aio.AioRpcError) as no_escrow:
                await escrow_of(world, target.id)
            assert no_escrow.value.code() == grpc.StatusCode.NOT_FOUND
            assert (decision.decision, decision.status, decision.escrow_id, decision.post_job_id) == (
                "reject", "rejected", "", "")
    await assert_consistent(stack)


async def test_twelve_approves_against_a_wallet_covering_five(stack, world):
    advertiser = new_actor("advertiser")
    channel = await world.approved_channel(price=1_000)
    await world.fund(advertiser, 5_000)
    campaign = await world.active_campaign(advertiser)
    targets = [await world.submitted_target(advertiser, campaign, channel) for _ in range(12)]
    replies = await asyncio.gather(*(approve(world, t.id) for t in targets))
    outcomes = sorted(r.decision.status for r in replies)
    assert outcomes == ["approved"] * 5 + ["failed"] * 7
    assert {r.decision.reason for r in replies if r.decision.status == "failed"} == {"insufficient_funds"}
    money = await wallet(world, advertiser)
    assert (money.balance, money.held) == (0, 5_000)
    await assert_consistent(stack)
