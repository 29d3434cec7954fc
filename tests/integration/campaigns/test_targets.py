"""Targets over gRPC: creation at the channel's price, the seed's submit
refusals, resubmission, cancel, and another tenant's reach."""
import datetime as dt

import grpc
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from adtech.campaigns.v1 import campaigns_pb2 as pb
from common.timestamps import to_timestamp, utcnow
from tests.integration.campaigns.conftest import admin, advertiser, new_id, publisher

BAD_REQUEST = grpc.StatusCode.FAILED_PRECONDITION


def submit_request(campaign_id, target_id):
    return pb.SubmitTargetRequest(campaign_id=campaign_id, target_id=target_id)


async def test_target_takes_the_channels_price_and_currency(campaigns):
    owner = advertiser()
    channel = await campaigns.channel(price=777, currency="USD")
    campaign = await campaigns.campaign(owner)
    target = await campaigns.target(owner, campaign.id, channel.id)
    assert (target.status, target.price, target.currency) == ("pending", 777, "USD")
    assert not target.HasField("post_job") and not target.HasField("submitted_at")


async def test_only_the_owner_creates_targets(campaigns):
    owner = advertiser()
    channel = await campaigns.channel()
    campaign = await campaigns.campaign(owner)
    for stranger in (advertiser(), admin(), publisher()):
        refusal = await campaigns.refusal("CreateTarget", pb.CreateTargetRequest(
            campaign_id=campaign.id, channel_id=channel.id, scheduled_at=to_timestamp(utcnow())), stranger)
        assert refusal.code == grpc.StatusCode.PERMISSION_DENIED
    assert await campaigns.scalar("SELECT count(*) FROM targets WHERE campaign_id = :c", c=campaign.id) == 0


async def test_target_without_a_time_or_with_an_unknown_channel_is_refused(campaigns):
    owner = advertiser()
    campaign = await campaigns.campaign(owner)
    missing_time = await campaigns.refusal("CreateTarget", pb.CreateTargetRequest(
        campaign_id=campaign.id, channel_id=new_id()), owner)
    assert missing_time.code == grpc.StatusCode.INVALID_ARGUMENT
    unknown = await campaigns.refusal("CreateTarget", pb.CreateTargetRequest(
        campaign_id=campaign.id, channel_id=new_id(), scheduled_at=to_timestamp(utcnow())), owner)
    assert unknown.code == grpc.StatusCode.NOT_FOUND


async def test_submit_sets_submitted_and_its_time(campaigns):
    _, _, target = await campaigns.submitted_target()
    assert target.status == "submitted" and target.HasField("submitted_at")


async def test_submit_in_a_draft_campaign_names_its_status(campaigns):
    owner = advertiser()
    channel = await campaigns.channel()
    campaign = await campaigns.campaign(owner, activate=False)
    target = await campaigns.target(owner, campaign.id, channel.id)
    refusal = await campaigns.refusal("SubmitTarget", submit_request(campaign.id, target.id), owner)
    assert (refusal.code, refusal.message) == (
        BAD_REQUEST, "Campaign must be active to submit targets (current status: draft)")


async def test_submit_twice_names_the_status(campaigns):
    owner, campaign, target = await campaigns.submitted_target()
    refusal = await campaigns.refusal("SubmitTarget", submit_request(campaign.id, target.id), owner)
    assert (refusal.code, refusal.message) == (BAD_REQUEST, "Target cannot be submitted from status submitted")


async def test_submit_to_an_unapproved_channel_is_refused(campaigns):
    owner = advertiser()
    channel = await campaigns.channel(approve=False)
    campaign = await campaigns.campaign(owner)
    target = await campaigns.target(owner, campaign.id, channel.id)
    refusal = await campaigns.refusal("SubmitTarget", submit_request(campaign.id, target.id), owner)
    assert refusal.message == "Channel must be approved"


async def test_a_target_whose_time_came_within_the_lead_since_create_is_refused_at_submit(campaigns):
    owner = advertiser()
    channel = await campaigns.channel()
    campaign = await campaigns.campaign(owner)
    at = utcnow() + dt.timedelta(hours=1)
    target = await campaigns.target(owner, campaign.id, channel.id, at=at)
    campaigns.servicer.clock = lambda: at - dt.timedelta(seconds=10)
    try:
        refusal = await campaigns.refusal("SubmitTarget", submit_request(campaign.id, target.id), owner)
    finally:
        campaigns.servicer.clock = utcnow
    assert (refusal.code, refusal.message, refusal.reason) == (
        BAD_REQUEST, "scheduledAt must be in the future: at least 30 s ahead of now", "scheduled_too_soon")
    assert await campaigns.status_of(target.id) == "pending"


async def test_target_not_in_the_campaign_of_the_path_is_not_found(campaigns):
    owner, campaign, target = await campaigns.submitted_target()
    other = await campaigns.campaign(owner)
    for method, request in [("SubmitTarget", submit_request(other.id, target.id)),
                            ("GetTarget", pb.GetTargetRequest(campaign_id=other.id, target_id=target.id)),
                            ("CancelTarget", pb.CancelTargetRequest(campaign_id=other.id, target_id=target.id)),
                            ("SubmitTarget", submit_request(campaign.id, new_id()))]:
        refusal = await campaigns.refusal(method, request, owner)
        assert (refusal.code, refusal.message) == (grpc.StatusCode.NOT_FOUND, "Campaign target not found")


async def test_another_tenant_cannot_read_submit_or_cancel_a_target(campaigns):
    owner, campaign, target = await campaigns.submitted_target()
    stranger = advertiser()
    for method, request in [("GetTarget", pb.GetTargetRequest(campaign_id=campaign.id, target_id=target.id)),
                            ("SubmitTarget", submit_request(campaign.id, target.id)),
                            ("CancelTarget", pb.CancelTargetRequest(campaign_id=campaign.id, target_id=target.id)),
                            ("ListTargets", pb.ListTargetsRequest(campaign_id=campaign.id))]:
        for actor in (stranger, publisher()):
            refusal = await campaigns.refusal(method, request, actor)
            assert refusal.code == grpc.StatusCode.PERMISSION_DENIED and target.id not in refusal.message
    assert await campaigns.status_of(target.id) == "submitted"


async def test_admin_reads_and_lists_any_target_but_may_not_submit(campaigns):
    owner = advertiser()
    channel = await campaigns.channel()
    campaign = await campaigns.campaign(owner)
    made = [(await campaigns.target(owner, campaign.id, channel.id)).id for _ in range(3)]
    got = (await campaigns.call("GetTarget", pb.GetTargetRequest(campaign_id=campaign.id, target_id=made[0]),
                                admin())).target
    assert got.id == made[0]
    first = await campaigns.call("ListTargets", pb.ListTargetsRequest(campaign_id=campaign.id, limit=2), admin())
    second = await campaigns.call("ListTargets", pb.ListTargetsRequest(
        campaign_id=campaign.id, limit=2, cursor=first.next_cursor), admin())
    assert [t.id for t in first.targets] + [t.id for t in second.targets] == made and not second.next_cursor
    refusal = await campaigns.refusal("SubmitTarget", submit_request(campaign.id, made[0]), admin())
    assert refusal.code == grpc.StatusCode.PERMISSION_DENIED


async def test_resubmitting_a_rejected_target_clears_the_verdict(campaigns):
    owner, campaign, target = await campaigns.submitted_target()
    rejected = (await campaigns.call("RejectTarget", pb.RejectTargetRequest(
        target_id=target.id, moderator_id=new_id(), reason="off-brand"), admin())).target
    assert (rejected.status, rejected.moderation_reason) == ("rejected", "off-brand") and rejected.moderated_by
    again = await campaigns.submit(owner, campaign.id, target.id)
    assert (again.status, again.moderated_by, again.moderation_reason) == ("submitted", "", "")
    assert not again.HasField("moderated_at")
    assert again.submitted_at.ToDatetime() >= target.submitted_at.ToDatetime()


async def test_owner_cancels_a_pending_target(campaigns):
    owner = advertiser()
    channel = await campaigns.channel()
    campaign = await campaigns.campaign(owner)
    target = await campaigns.target(owner, campaign.id, channel.id)
    cancelled = (await campaigns.call("CancelTarget", pb.CancelTargetRequest(
        campaign_id=campaign.id, target_id=target.id), owner)).target
    assert cancelled.status == "cancelled"
    again = await campaigns.refusal("CancelTarget", pb.CancelTargetRequest(
        campaign_id=campaign.id, target_id=target.id), owner)
    assert (again.code, again.message) == (BAD_REQUEST, "Target cannot be cancelled from status cancelled")


async def test_cancelling_an_approved_target_cancels_its_post_job_and_queues_a_refund(campaigns):
    owner, campaign, target = await campaigns.submitted_target()
    decision = new_id()
    await campaigns.reserve(target.id, decision)
    await campaigns.approve(target.id, decision)
    cancelled = (await campaigns.call("CancelTarget", pb.CancelTargetRequest(
        campaign_id=campaign.id, target_id=target.id), admin())).target
    assert (cancelled.status, cancelled.post_job.status) == ("cancelled", "cancelled")
    refunds = await campaigns.rows("SELECT payload FROM outbox_messages WHERE topic = 'escrow.refund' "
                                   "AND aggregate_id = :t", t=target.id)
    assert [r.payload for r in refunds] == [{"target_id": target.id}]


@pytest.mark.parametrize("status, job_status", [("published", "published"), ("completed", "verified"),
                                                ("failed", "failed")])
async def test_cancelling_a_target_with_no_cancel_move_is_invalid_transition_whatever_its_post_job(
        campaigns, status, job_status):
    owner, campaign, target = await campaigns.submitted_target()
    decision = new_id()
    await campaigns.reserve(target.id, decision)
    await campaigns.approve(target.id, decision)
    # Where publication would have taken it: the job out of the queue.
    async with campaigns.engine.begin() as conn:
        await conn.execute(sa.text("""
            UPDATE post_jobs SET status = :j, message_url = 'https://t.me/c/1', published_at = now(),
                   verified_at = CASE WHEN :j = 'verified' THEN now() END,
                   failure_reason = CASE WHEN :j = 'failed' THEN 'gone' END
             WHERE target_id = :t"""), {"j": job_status, "t": target.id})
        await conn.execute(sa.text("UPDATE targets SET status = :s WHERE id = :t"), {"s": status, "t": target.id})
    for actor in (owner, admin()):
        refusal = await campaigns.refusal("CancelTarget", pb.CancelTargetRequest(
            campaign_id=campaign.id, target_id=target.id), actor)
        assert (refusal.code, refusal.reason, refusal.message) == (
            BAD_REQUEST, "invalid_transition", f"Target cannot be cancelled from status {status}")


async def test_cancelling_an_unapproved_target_queues_no_refund(campaigns):
    owner, campaign, target = await campaigns.submitted_target()
    await campaigns.call("CancelTarget", pb.CancelTargetRequest(campaign_id=campaign.id, target_id=target.id), owner)
    assert await campaigns.scalar("SELECT count(*) FROM outbox_messages WHERE aggregate_id = :t", t=target.id) == 0


@pytest.mark.parametrize("method", ["SubmitTarget", "CancelTarget"])
async def test_resubmit_or_cancel_while_approving_is_a_conflict(campaigns, method):
    owner, campaign, target = await campaigns.submitted_target()
    await campaigns.call("RejectTarget", pb.RejectTargetRequest(target_id=target.id, moderator_id=new_id(),
                                                                reason="x"), admin())
    await campaigns.submit(owner, campaign.id, target.id)
    await campaigns.reserve(target.id, new_id())
    request = getattr(pb, f"{method}Request")(campaign_id=campaign.id, target_id=target.id)
    refusal = await campaigns.refusal(method, request, owner)
    assert (refusal.code, refusal.reason) == (grpc.StatusCode.ABORTED, "target_being_approved")
    assert await campaigns.status_of(target.id) == "approving"


async def test_no_route_submits_a_target_without_its_campaign(campaigns):
    owner, campaign, target = await campaigns.submitted_target()
    refusal = await campaigns.refusal("SubmitTarget", pb.SubmitTargetRequest(target_id=target.id), owner)
    assert refusal.code == grpc.StatusCode.INVALID_ARGUMENT


async def test_the_database_refuses_two_booked_posts_of_a_channel_in_overlapping_slots(campaigns):
    """The slot rule holds even for a writer that skips the use case's check."""
    owner = advertiser()
    channel = await campaigns.channel()
    campaign = await campaigns.campaign(owner)
    first = await campaigns.target(owner, campaign.id, channel.id, submit=True)
    second = await campaigns.target(owner, campaign.id, channel.id, submit=True)
    with pytest.raises(IntegrityError, match="channel_slots_one_post_per_slot"):
        async with campaigns.engine.begin() as conn:
            await conn.execute(sa.text("""
                UPDATE channel_slots SET slot = tstzrange(lower(f.slot) + interval '30 minutes',
                                                          upper(f.slot) + interval '30 minutes')
                  FROM channel_slots f WHERE f.target_id = :first AND channel_slots.target_id = :second"""),
                {"first": first.id, "second": second.id})
    assert await campaigns.scalar("SELECT count(*) FROM targets WHERE channel_id = :c AND status = 'submitted'",
                                  c=channel.id) == 2


async def test_a_target_leaving_the_booked_statuses_frees_its_slot_and_another_post_takes_it(campaigns):
    owner = advertiser()
    channel = await campaigns.channel()
    campaign = await campaigns.campaign(owner)
    first = await campaigns.target(owner, campaign.id, channel.id, submit=True)
    at = first.scheduled_at.ToDatetime(tzinfo=dt.timezone.utc)
    await campaigns.call("RejectTarget", pb.RejectTargetRequest(target_id=first.id, moderator_id=new_id(),
                                                                reason="no"), admin())
    assert await campaigns.scalar("SELECT count(*) FROM channel_slots WHERE target_id = :t", t=first.id) == 0
    second = await campaigns.target(owner, campaign.id, channel.id, at=at, submit=True)
    assert second.status == "submitted"
    assert await campaigns.scalar("SELECT count(*) FROM channel_slots WHERE channel_id = :c", c=channel.id) == 1
