"""Twenty callers at once against the real server: exactly one effect in
the database, and every loser gets a clean refusal (never INTERNAL)."""
import asyncio

import grpc

from adtech.campaigns.v1 import campaigns_pb2 as pb
from tests.integration.campaigns.conftest import admin, advertiser, new_id

CALLERS = 20
REFUSALS = {grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.ABORTED}


async def race(calls) -> tuple[list, list]:
    results = await asyncio.gather(*calls, return_exceptions=True)
    wins = [r for r in results if not isinstance(r, BaseException)]
    losses = [r for r in results if isinstance(r, BaseException)]
    assert all(isinstance(e, grpc.aio.AioRpcError) and e.code() in REFUSALS for e in losses), losses
    return wins, losses


async def test_concurrent_activations_succeed_once(campaigns):
    owner = advertiser()
    campaign = await campaigns.campaign(owner, activate=False)
    wins, losses = await race([campaigns.change(campaign.id, "activate", owner) for _ in range(CALLERS)])
    assert len(wins) == 1 and len(losses) == CALLERS - 1
    assert {e.details() for e in losses} == {"Campaign cannot be activated from status active"}
    assert await campaigns.scalar("SELECT count(*) FROM audit_log WHERE entity_id = :c AND action = 'campaign_activate'",
                                  c=campaign.id) == 1


async def test_concurrent_submits_submit_once(campaigns):
    owner = advertiser()
    campaign = await campaigns.campaign(owner)
    target = await campaigns.target(owner, campaign.id, (await campaigns.channel()).id)
    wins, losses = await race([campaigns.submit(owner, campaign.id, target.id) for _ in range(CALLERS)])
    assert len(wins) == 1
    assert {e.details() for e in losses} == {"Target cannot be submitted from status submitted"}
    assert await campaigns.scalar("SELECT count(*) FROM audit_log WHERE entity_id = :t AND action = 'target_submitted'",
                                  t=target.id) == 1


async def test_concurrent_campaign_cancels_cancel_once_and_queue_one_refund_per_target(campaigns):
    owner, campaign, target = await campaigns.submitted_target()
    decision = new_id()
    await campaigns.reserve(target.id, decision)
    await campaigns.approve(target.id, decision)
    wins, _ = await race([campaigns.change(campaign.id, "cancel", owner if i % 2 else admin()) for i in range(CALLERS)])
    assert len(wins) == 1
    assert await campaigns.scalar("SELECT count(*) FROM outbox_messages WHERE aggregate_id = :t", t=target.id) == 1
    assert await campaigns.scalar("SELECT status FROM post_jobs WHERE target_id = :t", t=target.id) == "cancelled"


async def test_concurrent_target_cancels_cancel_once(campaigns):
    owner, campaign, target = await campaigns.submitted_target()
    decision = new_id()
    await campaigns.reserve(target.id, decision)
    await campaigns.approve(target.id, decision)
    request = pb.CancelTargetRequest(campaign_id=campaign.id, target_id=target.id)
    wins, _ = await race([campaigns.call("CancelTarget", request, owner) for _ in range(CALLERS)])
    assert len(wins) == 1
    assert await campaigns.scalar("SELECT count(*) FROM outbox_messages WHERE aggregate_id = :t", t=target.id) == 1


async def test_concurrent_reserves_of_different_decisions_lock_once(campaigns):
    _, _, target = await campaigns.submitted_target()
    decisions = [new_id() for _ in range(CALLERS)]
    wins, _ = await race([campaigns.reserve(target.id, d) for d in decisions])
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
    await asyncio.gather(campaigns.change(campaign.id, "cancel", owner), campaigns.approve(target.id, decision),
                         return_exceptions=True)
    assert await campaigns.status_of(target.id) == "cancelled"
    assert await campaigns.scalar("SELECT count(*) FROM post_jobs WHERE target_id = :t AND status <> 'cancelled'",
                                  t=target.id) == 0
    assert await campaigns.scalar("SELECT count(*) FROM outbox_messages WHERE aggregate_id = :t", t=target.id) == 1
