"""ReserveTarget, ReleaseTarget, ApproveTarget, RejectTarget, snapshot and
queue: DESIGN.md's saga step rules 1, 2, 4, 5, each with a late duplicate
replayed after the saga has moved on, changing nothing."""
import datetime as dt

import grpc
import pytest
import sqlalchemy as sa

from adtech.campaigns.v1 import campaigns_pb2 as pb
from common.timestamps import utcnow
from tests.integration.campaigns.conftest import admin, advertiser, new_id, publisher

REFUSED = grpc.StatusCode.FAILED_PRECONDITION


async def test_reserve_moves_submitted_target_to_approving_for_the_decision(campaigns):
    _, _, target = await campaigns.submitted_target()
    decision = new_id()
    response = await campaigns.reserve(target.id, decision)
    assert (response.snapshot.target.status, response.snapshot.reserved_by) == ("approving", decision)
    assert await campaigns.status_of(target.id) == "approving"


async def test_approve_creates_one_post_job_at_the_scheduled_time(campaigns):
    _, _, target = await campaigns.submitted_target()
    decision = new_id()
    await campaigns.reserve(target.id, decision)
    response = await campaigns.approve(target.id, decision)
    assert (response.target.status, response.post_job.status) == ("approved", "queued")
    assert response.post_job.execute_at == target.scheduled_at and response.target.moderated_by
    assert await campaigns.scalar("SELECT count(*) FROM post_jobs WHERE target_id = :t", t=target.id) == 1


async def test_saga_steps_are_for_the_system_or_an_admin(campaigns):
    _, _, target = await campaigns.submitted_target()
    for actor in (advertiser(), publisher()):
        with_role = await campaigns.refusal("ReserveTarget", pb.ReserveTargetRequest(
            target_id=target.id, decision_id=new_id()), actor)
        assert with_role.code == grpc.StatusCode.PERMISSION_DENIED
    assert (await campaigns.call("ReserveTarget", pb.ReserveTargetRequest(
        target_id=target.id, decision_id=new_id()), admin())).snapshot.target.status == "approving"


# ---- rule 1 and 2: reserve records its outcome, refusals included
async def test_reserve_refusal_carries_the_seed_code_and_message(campaigns):
    owner, campaign, target = await campaigns.submitted_target()
    await campaigns.change(campaign.id, "pause", owner)
    refusal = await campaigns.refusal("ReserveTarget", pb.ReserveTargetRequest(target_id=target.id,
                                                                               decision_id=new_id()))
    assert (refusal.code, refusal.reason, refusal.message) == (
        REFUSED, "campaign_not_active", f"Campaign {campaign.id} must be active (current: paused)")


# Each way a submitted target stops being approvable, made directly in the
# database where no API leads there: the one-statement reserve must not
# move it, and the judgement under the lock refuses with the seed's reason.
UNAPPROVABLE = {
    "target_not_submitted": "UPDATE targets SET status = 'rejected' WHERE id = :t",
    "campaign_not_active": "UPDATE campaigns SET status = 'paused' WHERE id = (SELECT campaign_id FROM targets WHERE id = :t)",
    "no_creatives": "DELETE FROM creatives WHERE campaign_id = (SELECT campaign_id FROM targets WHERE id = :t)",
    "channel_not_approved": "UPDATE channels SET status = 'rejected' WHERE id = (SELECT channel_id FROM targets WHERE id = :t)",
    "scheduled_too_soon": "UPDATE targets SET scheduled_at = now() + interval '5 seconds' WHERE id = :t",
}


@pytest.mark.parametrize("reason", sorted(UNAPPROVABLE))
async def test_reserve_of_a_target_that_is_no_longer_approvable_moves_nothing_and_says_why(campaigns, reason):
    _, _, target = await campaigns.submitted_target()
    async with campaigns.engine.begin() as conn:
        await conn.execute(sa.text(UNAPPROVABLE[reason]), {"t": target.id})
    before = await campaigns.status_of(target.id)
    refusal = await campaigns.refusal("ReserveTarget", pb.ReserveTargetRequest(target_id=target.id,
                                                                               decision_id=new_id()))
    assert (refusal.code, refusal.reason) == (REFUSED, reason)
    assert await campaigns.status_of(target.id) == before
    assert await campaigns.scalar("SELECT count(*) FROM saga_steps WHERE target_id = :t AND outcome = 'reserved'",
                                  t=target.id) == 0


async def test_late_reserve_after_a_refusal_stays_refused_after_the_cause_is_gone(campaigns):
    owner, campaign, target = await campaigns.submitted_target()
    decision = new_id()
    await campaigns.change(campaign.id, "pause", owner)
    await campaigns.refusal("ReserveTarget", pb.ReserveTargetRequest(target_id=target.id, decision_id=decision))
    await campaigns.change(campaign.id, "resume", owner)
    late = await campaigns.refusal("ReserveTarget", pb.ReserveTargetRequest(target_id=target.id, decision_id=decision))
    assert late.reason == "campaign_not_active"
    assert await campaigns.status_of(target.id) == "submitted"


async def test_late_reserve_after_a_release_does_not_lock_again(campaigns):
    _, _, target = await campaigns.submitted_target()
    decision = new_id()
    await campaigns.reserve(target.id, decision)
    assert (await campaigns.release(target.id, decision)).released
    await campaigns.reserve(target.id, decision)  # answered from the record: no second lock
    assert await campaigns.status_of(target.id) == "submitted"


async def test_late_reserve_after_a_resubmit_does_not_lock_the_new_submission(campaigns):
    owner, campaign, target = await campaigns.submitted_target()
    decision = new_id()
    await campaigns.reserve(target.id, decision)
    await campaigns.release(target.id, decision)
    await campaigns.call("RejectTarget", pb.RejectTargetRequest(target_id=target.id, moderator_id=new_id(),
                                                                reason="no"), admin())
    await campaigns.submit(owner, campaign.id, target.id)
    await campaigns.reserve(target.id, decision)
    assert await campaigns.scalar("SELECT reserved_by FROM targets WHERE id = :t", t=target.id) is None


async def test_reserve_arriving_after_its_release_is_fenced(campaigns):
    _, _, target = await campaigns.submitted_target()
    decision = new_id()
    assert not (await campaigns.release(target.id, decision)).released  # the reserve's reply was lost
    late = await campaigns.refusal("ReserveTarget", pb.ReserveTargetRequest(target_id=target.id, decision_id=decision))
    assert late.reason == "decision_released"
    assert await campaigns.status_of(target.id) == "submitted"


async def test_a_decision_reserves_only_its_own_target(campaigns):
    _, _, first = await campaigns.submitted_target()
    _, _, second = await campaigns.submitted_target()
    decision = new_id()
    await campaigns.reserve(first.id, decision)
    refusal = await campaigns.refusal("ReserveTarget", pb.ReserveTargetRequest(target_id=second.id,
                                                                               decision_id=decision))
    assert (refusal.code, refusal.reason) == (grpc.StatusCode.ALREADY_EXISTS, "decision_reused")
    assert await campaigns.scalar("SELECT status FROM targets WHERE id = :t", t=second.id) == "submitted"


async def test_second_decision_cannot_reserve_a_reserved_target(campaigns):
    _, _, target = await campaigns.submitted_target()
    first = new_id()
    await campaigns.reserve(target.id, first)
    refusal = await campaigns.refusal("ReserveTarget", pb.ReserveTargetRequest(target_id=target.id,
                                                                               decision_id=new_id()))
    assert (refusal.reason, refusal.message) == ("target_not_submitted", "Target cannot be approved from status approving")
    assert await campaigns.scalar("SELECT reserved_by FROM targets WHERE id = :t", t=target.id) is not None


# ---- rule 4: release only the decision's own lock
async def test_release_of_an_old_decision_does_not_steal_a_newer_lock(campaigns):
    _, _, target = await campaigns.submitted_target()
    old, new = new_id(), new_id()
    await campaigns.reserve(target.id, old)
    await campaigns.release(target.id, old)
    await campaigns.reserve(target.id, new)
    await campaigns.release(target.id, old)  # late duplicate: answered from the record
    assert await campaigns.status_of(target.id) == "approving"
    assert str(await campaigns.scalar("SELECT reserved_by FROM targets WHERE id = :t", t=target.id)) == new


async def test_release_by_a_decision_without_the_lock_changes_nothing(campaigns):
    _, _, target = await campaigns.submitted_target()
    holder = new_id()
    await campaigns.reserve(target.id, holder)
    assert not (await campaigns.release(target.id, new_id())).released
    assert str(await campaigns.scalar("SELECT reserved_by FROM targets WHERE id = :t", t=target.id)) == holder


async def test_release_repeated_answers_as_the_first_time(campaigns):
    _, _, target = await campaigns.submitted_target()
    decision = new_id()
    await campaigns.reserve(target.id, decision)
    assert (await campaigns.release(target.id, decision)).released
    assert (await campaigns.release(target.id, decision)).released
    assert await campaigns.status_of(target.id) == "submitted"


# ---- rule 5: approve only the decision's lock; repeats answered from the record
async def test_repeated_approve_returns_the_same_post_job(campaigns):
    _, _, target = await campaigns.submitted_target()
    decision = new_id()
    await campaigns.reserve(target.id, decision)
    first = await campaigns.approve(target.id, decision)
    again = await campaigns.approve(target.id, decision)
    assert again.post_job.id == first.post_job.id


async def test_late_approve_after_a_cancellation_still_returns_the_post_job(campaigns):
    owner, campaign, target = await campaigns.submitted_target()
    decision = new_id()
    await campaigns.reserve(target.id, decision)
    first = await campaigns.approve(target.id, decision)
    await campaigns.change(campaign.id, "cancel", owner)
    late = await campaigns.approve(target.id, decision)
    assert late.post_job.id == first.post_job.id and late.target.status == "cancelled"


async def test_approve_after_a_campaign_cancellation_is_refused_and_the_refusal_sticks(campaigns):
    owner, campaign, target = await campaigns.submitted_target()
    decision = new_id()
    await campaigns.reserve(target.id, decision)
    await campaigns.change(campaign.id, "cancel", owner)
    request = pb.ApproveTargetRequest(target_id=target.id, decision_id=decision, moderator_id=new_id(),
                                      escrow_id=new_id())
    refusal = await campaigns.refusal("ApproveTarget", request)
    assert (refusal.code, refusal.reason) == (REFUSED, "target_cancelled")
    assert (await campaigns.refusal("ApproveTarget", request)).reason == "target_cancelled"
    assert await campaigns.scalar("SELECT count(*) FROM post_jobs WHERE target_id = :t", t=target.id) == 0


async def test_approve_without_the_decisions_lock_is_refused(campaigns):
    _, _, target = await campaigns.submitted_target()
    decision = new_id()
    refusal = await campaigns.refusal("ApproveTarget", pb.ApproveTargetRequest(
        target_id=target.id, decision_id=decision, moderator_id=new_id(), escrow_id=new_id()))
    assert refusal.reason == "target_not_reserved"
    # The refusal is recorded: a reserve and approve of this decision later stay refused for approve.
    await campaigns.reserve(target.id, decision)
    late = await campaigns.refusal("ApproveTarget", pb.ApproveTargetRequest(
        target_id=target.id, decision_id=decision, moderator_id=new_id(), escrow_id=new_id()))
    assert late.reason == "target_not_reserved"
    assert await campaigns.status_of(target.id) == "approving"


async def test_a_paused_campaign_does_not_stop_an_approval(campaigns):
    owner, campaign, target = await campaigns.submitted_target()
    decision = new_id()
    await campaigns.reserve(target.id, decision)
    await campaigns.change(campaign.id, "pause", owner)
    assert (await campaigns.approve(target.id, decision)).target.status == "approved"


async def test_late_approve_after_a_release_is_refused(campaigns):
    _, _, target = await campaigns.submitted_target()
    decision = new_id()
    await campaigns.reserve(target.id, decision)
    await campaigns.release(target.id, decision)
    refusal = await campaigns.refusal("ApproveTarget", pb.ApproveTargetRequest(
        target_id=target.id, decision_id=decision, moderator_id=new_id(), escrow_id=new_id()))
    assert refusal.reason == "target_not_reserved"
    assert await campaigns.status_of(target.id) == "submitted"


# ---- reject
async def test_reject_while_approving_is_refused_with_conflict(campaigns):
    _, _, target = await campaigns.submitted_target()
    await campaigns.reserve(target.id, new_id())
    refusal = await campaigns.refusal("RejectTarget", pb.RejectTargetRequest(
        target_id=target.id, moderator_id=new_id(), reason="late"), admin())
    assert (refusal.code, refusal.reason) == (grpc.StatusCode.ABORTED, "target_being_approved")


async def test_reject_of_a_pending_target_names_its_status(campaigns):
    owner = advertiser()
    campaign = await campaigns.campaign(owner)
    target = await campaigns.target(owner, campaign.id, (await campaigns.channel()).id)
    refusal = await campaigns.refusal("RejectTarget", pb.RejectTargetRequest(
        target_id=target.id, moderator_id=new_id(), reason="x"), admin())
    assert (refusal.code, refusal.message) == (REFUSED, "Target cannot be rejected from status pending")


# ---- snapshot, queue, audit
async def test_snapshot_judges_the_approve_preconditions_with_campaigns_clock(campaigns):
    _, _, target = await campaigns.submitted_target()
    snapshot = (await campaigns.call("GetTargetSnapshot", pb.GetTargetSnapshotRequest(target_id=target.id))).snapshot
    assert (snapshot.campaign_status, snapshot.creatives_count, snapshot.channel_status) == ("active", 1, "approved")
    assert snapshot.approve_refusal_code == "" and snapshot.target.price == 5000
    due = target.scheduled_at.ToDatetime(tzinfo=dt.timezone.utc)
    campaigns.servicer.clock = lambda: due - dt.timedelta(seconds=10)
    try:
        late = (await campaigns.call("GetTargetSnapshot", pb.GetTargetSnapshotRequest(target_id=target.id))).snapshot
    finally:
        campaigns.servicer.clock = utcnow
    assert (late.approve_refusal_code, late.approve_refusal_message) == (
        "scheduled_too_soon", "scheduledAt must be in the future: at least 30 s ahead of now")


async def test_snapshot_is_for_admin_or_system_only(campaigns):
    owner, _, target = await campaigns.submitted_target()
    refusal = await campaigns.refusal("GetTargetSnapshot", pb.GetTargetSnapshotRequest(target_id=target.id), owner)
    assert refusal.code == grpc.StatusCode.PERMISSION_DENIED


async def test_queue_lists_submitted_targets_oldest_submission_first(campaigns):
    owner = advertiser()
    channel = await campaigns.channel()
    campaign = await campaigns.campaign(owner)
    made = [await campaigns.target(owner, campaign.id, channel.id) for _ in range(3)]
    for target in reversed(made):
        await campaigns.submit(owner, campaign.id, target.id)
    queued, request = [], pb.ListSubmittedTargetsRequest(limit=2)
    while True:
        page = await campaigns.call("ListSubmittedTargets", request, admin())
        queued += [item for item in page.items if item.target.campaign_id == campaign.id]
        if not page.next_cursor:
            break
        request.cursor = page.next_cursor
    assert [item.target.id for item in queued] == [t.id for t in reversed(made)]
    assert queued[0].channel.id == channel.id and queued[0].campaign_name == campaign.name
    assert queued[0].advertiser_id == owner.id and len(queued[0].creatives) == 1


async def test_target_audit_counts_post_jobs_and_shows_the_lock(campaigns):
    _, _, target = await campaigns.submitted_target()
    decision = new_id()
    await campaigns.reserve(target.id, decision)
    audit, request = {}, pb.ListTargetAuditRequest(limit=200)
    while True:
        page = await campaigns.call("ListTargetAudit", request)
        audit.update({row.target_id: row for row in page.targets})
        if not page.next_cursor:
            break
        request.cursor = page.next_cursor
    assert (audit[target.id].status, audit[target.id].reserved_by, audit[target.id].post_jobs) == (
        "approving", decision, 0)
    assert all(row.post_jobs <= 1 for row in audit.values())
