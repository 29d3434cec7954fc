"""Twenty callers at once against the real server: exactly one effect in
the database, and every loser gets the refusal the winner's result
dictates (the status it left, never INTERNAL, never "try again")."""
import asyncio

import grpc

from adtech.campaigns.v1 import campaigns_pb2 as pb
from common.grpc_errors import reason_of
from tests.integration.campaigns.conftest import admin, advertiser, new_id

CALLERS = 20
REFUSED = grpc.StatusCode.FAILED_PRECONDITION


async def race(calls, refusal: tuple[grpc.StatusCode, str, str] | None = None) -> tuple[list, list]:
    """The wins and losses of `calls` run at once; each loss is exactly
    `refusal` (status, reason, message)."""
    results = await asyncio.gather(*calls, return_exceptions=True)
    wins = [r for r in results if not isinstance(r, BaseException)]
    losses = [r for r in results if isinstance(r, BaseException)]
    assert all(isinstance(e, grpc.aio.AioRpcError) for e in losses), losses
    assert [(e.code(), reason_of(e), e.details()) for e in losses] == [refusal] * len(losses)
    return wins, losses


async def test_concurrent_activations_succeed_once(campaigns):
    owner = advertiser()
    campaign = await campaigns.campaign(owner, activate=False)
    wins, losses = await race([campaigns.change(campaign.id, "activate", owner) for _ in range(CALLERS)],
                              (REFUSED, "invalid_transition", "Campaign cannot be activated from status active"))
    assert len(wins) == 1 and len(losses) == CALLERS - 1
    assert await campaigns.scalar("SELECT count(*) FROM audit_log WHERE entity_id = :c AND action = 'campaign_activate'",
                                  c=campaign.id) == 1


async def test_concurrent_submits_submit_once(campaigns):
    owner = advertiser()
    campaign = await campaigns.campaign(owner)
    target = await campaigns.target(owner, campaign.id, (await campaigns.channel()).id)
    wins, losses = await race([campaigns.submit(owner, campaign.id, target.id) for _ in range(CALLERS)],
                              (REFUSED, "invalid_transition", "Target cannot be submitted from status submitted"))
    assert len(wins) == 1 and len(losses) == CALLERS - 1
    assert await campaigns.scalar("SELECT count(*) FROM audit_log WHERE entity_id = :t AND action = 'target_submitted'",
                                  t=target.id) == 1


async def test_concurrent_campaign_cancels_cancel_once_and_queue_one_refund_per_target(campaigns):
    owner, campaign, target = await campaigns.submitted_target()
    decision = new_id()
    await campaigns.reserve(target.id, decision)
    await campaigns.approve(target.id, decision)
    wins, _ = await race([campaigns.change(campaign.id, "cancel", owner if i % 2 else admin()) for i in range(CALLERS)],
                         (REFUSED, "invalid_transition", "Campaign cannot be cancelled from status cancelled"))
    assert len(wins) == 1 and wins[0].status == "cancelled"
    assert await campaigns.scalar("SELECT count(*) FROM outbox_messages WHERE aggregate_id = :t", t=target.id) == 1
    assert await campaigns.scalar("SELECT status FROM post_jobs WHERE target_id = :t", t=target.id) == "cancelled"


async def test_concurrent_target_cancels_cancel_once(campaigns):
    owner, campaign, target = await campaigns.submitted_target()
    decision = new_id()
    await campaigns.reserve(target.id, decision)
    await campaigns.approve(target.id, decision)
    request = pb.CancelTargetRequest(campaign_id=campaign.id, target_id=target.id)
    wins, _ = await race([campaigns.call("CancelTarget", request, owner) for _ in range(CALLERS)],
                         (REFUSED, "invalid_transition", "Target cannot be cancelled from status cancelled"))
    assert len(wins) == 1 and (wins[0].target.status, wins[0].target.post_job.status) == ("cancelled", "cancelled")
    assert await campaigns.scalar("SELECT count(*) FROM outbox_messages WHERE aggregate_id = :t", t=target.id) == 1


async def test_concurrent_reserves_of_different_decisions_lock_once(campaigns):
    _, _, target = await campaigns.submitted_target()
    decisions = [new_id() for _ in range(CALLERS)]
    wins, _ = await race([campaigns.reserve(target.id, d) for d in decisions],
                         (REFUSED, "target_not_submitted", "Target cannot be approved from status approving"))
    assert len(wins) == 1
    assert str(await campaigns.scalar("SELECT reserved_by FROM targets WHERE id = :t", t=target.id)) \
        == wins[0].snapshot.reserved_by


async def test_concurrent_approves_of_one_decision_create_one_post_job(campaigns):
    _, _, target = await campaigns.submitted_target()
    decision = new_id()
    await campaigns.reserve(target.id, decision)
    wins, _ = await race([campaigns.approve(target.id, decision) for _ in range(CALLERS)])
    assert len(wins) == CALLERS and len({w.post_job.id for w in wins}) == 1
    assert await campaigns.scalar("SELECT count(*) FROM post_jobs WHERE target_id = :t", t=target.id) == 1


async def test_campaign_cancel_racing_approve_leaves_no_live_post_job(campaigns):
    owner, campaign, target = await campaigns.submitted_target()
    decision = new_id()
    await campaigns.reserve(target.id, decision)
    cancel, approve = await asyncio.gather(campaigns.change(campaign.id, "cancel", owner),
                                           campaigns.approve(target.id, decision), return_exceptions=True)
    # The cancel always wins (an approving target is cancelled by its
    # campaign's cancellation); the approve either came first (its post job
    # is then cancelled with the target) or is refused because the
    # cancellation came first (no post job at all). Either way the escrow
    # the saga may hold is refunded: one refund message.
    assert cancel.status == "cancelled"
    jobs = await campaigns.rows("SELECT id, status FROM post_jobs WHERE target_id = :t", t=target.id)
    if isinstance(approve, BaseException):
        assert (approve.code(), reason_of(approve), approve.details()) == (REFUSED, "target_cancelled",
                                                                           "Target cannot be approved from "
                                                                           "status cancelled")
        assert jobs == []
    else:
        assert approve.target.status == "approved"
        assert [(str(job.id), job.status) for job in jobs] == [(approve.post_job.id, "cancelled")]
    assert await campaigns.status_of(target.id) == "cancelled"
    assert await campaigns.scalar("SELECT count(*) FROM outbox_messages WHERE aggregate_id = :t", t=target.id) == 1
