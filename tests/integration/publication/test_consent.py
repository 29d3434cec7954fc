"""The channel owner's yes for every post, and ownership proven right before
each one (docs/design.md, "Who owns a channel, and who agrees"), against
the real campaigns and payments services and the session's Telegram
sandbox: accept, decline, expiry and cancel each move money once, however
they race; a post never goes out once its owner lost the chat."""
import asyncio
import datetime as dt
import random

import grpc
import pytest

from adtech.campaigns.v1 import campaigns_pb2 as cpb
from common.reasons import Reason
from common.timestamps import utcnow
from tests.harness import eventually
from tests.integration.campaigns.conftest import advertiser, publisher
from tests.integration.publication.conftest import PRICE


async def accept(market, booked, actor=None, *, job_id=None):
    job_id = job_id or (await market.job(booked)).id
    return await market.campaigns.call("AcceptPostJob", cpb.AcceptPostJobRequest(post_job_id=str(job_id)),
                                       actor or booked.publisher)


async def decline(market, booked, reason="not our audience", actor=None, *, job_id=None):
    job_id = job_id or (await market.job(booked)).id
    return await market.campaigns.call("DeclinePostJob", cpb.DeclinePostJobRequest(
        post_job_id=str(job_id), reason=reason), actor or booked.publisher)


async def refusal(call):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    from common.grpc_errors import reason_of
    return caught.value.code(), reason_of(caught.value)


async def escrow_becomes(market, booked, status: str) -> None:
    async def reached():
        return (await market.escrow(booked)).status == status
    await eventually(reached, timeout=15)


async def test_an_approved_post_of_a_channel_without_auto_accept_waits_for_its_owner(market):
    before = utcnow()
    booked = await market.booked(auto_accept=False)
    job = await market.job(booked)
    assert job.status == "awaiting_publisher"
    scheduled = job.execute_at
    # acceptBy = min(approved + PUBLISHER_ANSWER_S (a day), scheduledAt - PUBLISHER_ANSWER_LEAD_S (300 s))
    expected = min(before + dt.timedelta(days=1), scheduled - dt.timedelta(seconds=300))
    assert abs((job.accept_by - expected).total_seconds()) < 30
    assert (await market.escrow(booked)).status == "held"


async def test_a_channel_that_auto_accepts_queues_its_post_as_before(market):
    booked = await market.booked(auto_accept=True)
    job = await market.job(booked)
    assert (job.status, job.accept_by) == ("queued", None)


async def test_the_owner_accepts_and_the_post_is_queued_for_its_time(market):
    booked = await market.booked(auto_accept=False)
    answered = (await accept(market, booked)).post_job
    assert answered.status == "queued" and answered.HasField("answered_at") and answered.HasField("accept_by")
    assert await market.target_status(booked) == "approved"
    assert (await market.escrow(booked)).status == "held"
    assert await refusal(accept(market, booked)) == (grpc.StatusCode.ABORTED, Reason.POST_JOB_NOT_AWAITING)
    assert await refusal(decline(market, booked)) == (grpc.StatusCode.ABORTED, Reason.POST_JOB_NOT_AWAITING)


async def test_only_the_channels_owner_answers(market):
    booked = await market.booked(auto_accept=False)
    for stranger in (publisher(), advertiser(), booked.advertiser):
        code, _ = await refusal(accept(market, booked, actor=stranger))
        assert code == grpc.StatusCode.PERMISSION_DENIED
        code, _ = await refusal(decline(market, booked, actor=stranger))
        assert code == grpc.StatusCode.PERMISSION_DENIED
    assert await market.job_status(booked) == "awaiting_publisher"


async def test_a_decline_declines_the_target_and_refunds_the_advertiser(market):
    booked = await market.booked(auto_accept=False)
    answered = (await decline(market, booked, "wrong topic")).post_job
    assert (answered.status, answered.decline_reason) == ("declined", "wrong topic")
    assert await market.target_status(booked) == "declined"
    await escrow_becomes(market, booked, "refunded")
    wallet = await market.wallet(booked.advertiser)
    assert (wallet.balance, wallet.held) == (PRICE, 0)
    await market.assert_reconciled()


async def test_a_decline_needs_a_reason(market):
    booked = await market.booked(auto_accept=False)
    code, _ = await refusal(decline(market, booked, "   "))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert await market.job_status(booked) == "awaiting_publisher"


async def test_an_answer_after_the_deadline_is_refused_and_the_order_expires_with_a_refund(market):
    booked = await market.booked(auto_accept=False)
    job = await market.job(booked)
    clock = market.campaigns.servicer.clock
    market.campaigns.servicer.clock = lambda: job.accept_by + dt.timedelta(seconds=1)
    try:
        assert await refusal(accept(market, booked)) == (grpc.StatusCode.ABORTED, Reason.ANSWER_DEADLINE_PASSED)
        assert await refusal(decline(market, booked)) == (grpc.StatusCode.ABORTED, Reason.ANSWER_DEADLINE_PASSED)
    finally:
        market.campaigns.servicer.clock = clock
    worker = market.worker()
    worker.publication.clock = lambda: job.accept_by + dt.timedelta(seconds=1)
    try:
        await market.passes(worker, 1)
    finally:
        await worker.holder.close()
    assert (await market.job_status(booked), await market.target_status(booked)) == ("expired", "declined")
    await escrow_becomes(market, booked, "refunded")
    assert await refusal(accept(market, booked)) == (grpc.StatusCode.ABORTED, Reason.POST_JOB_NOT_AWAITING)


async def test_a_target_awaiting_its_owner_can_be_cancelled_and_is_refunded(market):
    booked = await market.booked(auto_accept=False)
    await market.campaigns.call("CancelTarget", cpb.CancelTargetRequest(
        campaign_id=booked.campaign.id, target_id=booked.target.id), booked.advertiser)
    assert (await market.job_status(booked), await market.target_status(booked)) == ("cancelled", "cancelled")
    await escrow_becomes(market, booked, "refunded")
    assert await refusal(accept(market, booked)) == (grpc.StatusCode.ABORTED, Reason.POST_JOB_NOT_AWAITING)


@pytest.mark.parametrize("round_", range(6))
async def test_twenty_racing_accepts_declines_cancels_and_an_expiry_end_in_one_outcome_with_money_moved_once(
        market, round_):
    booked = await market.booked(auto_accept=False)
    job = await market.job(booked)
    worker = market.worker()
    # The expiry runs past the deadline on its own clock: it races the answers.
    worker.publication.clock = lambda: job.accept_by + dt.timedelta(seconds=1)

    async def cancel():
        return await market.campaigns.call("CancelTarget", cpb.CancelTargetRequest(
            campaign_id=booked.campaign.id, target_id=booked.target.id), booked.advertiser)

    kinds = random.Random(round_).choices(["accept", "decline", "cancel"], k=20)
    calls = [accept(market, booked, job_id=job.id) if kind == "accept" else
             decline(market, booked, job_id=job.id) if kind == "decline" else cancel() for kind in kinds]
    # The expiry joins from round 1 on (in round 0 the answers race alone).
    try:
        outcomes = await asyncio.gather(*calls, *([worker.run_once()] if round_ else []), return_exceptions=True)
    finally:
        await worker.holder.close()
    won = [kind for kind, o in zip(kinds, outcomes[:20]) if not isinstance(o, BaseException)]
    refused = [o for o in outcomes[:20] if isinstance(o, BaseException)]
    assert all(isinstance(o, grpc.aio.AioRpcError) and o.code() in (
        grpc.StatusCode.ABORTED, grpc.StatusCode.FAILED_PRECONDITION) for o in refused), refused
    job_status, target_status = await market.job_status(booked), await market.target_status(booked)
    answers = [kind for kind in won if kind != "cancel"] + (["expiry"] if job_status == "expired" else [])
    # One answer at most (accept, decline or the expiry); a cancel wins
    # alone, or after an accept (the post was still queued).
    assert len(answers) <= 1 and won.count("cancel") <= 1, (won, job_status)
    assert len(answers) + won.count("cancel") >= 1
    if won.count("cancel"):
        assert answers in ([], ["accept"]), (won, job_status)
    expected = {"queued": ("approved", "held"), "declined": ("declined", "refunded"),
                "cancelled": ("cancelled", "refunded"), "expired": ("declined", "refunded")}[job_status]
    assert target_status == expected[0]
    await escrow_becomes(market, booked, expected[1])
    await asyncio.sleep(0.3)  # a second refund would have been delivered by now
    wallet = await market.wallet(booked.advertiser)
    assert (wallet.balance + wallet.held) == PRICE
    await market.assert_reconciled()


# ---- ownership right before each publication

async def publish_now(market, booked) -> str:
    await market.its_time_comes(booked)
    worker = market.worker()
    try:
        await market.passes(worker, 1)
    finally:
        await worker.holder.close()
    return await market.job_status(booked)


async def channel_status(market, booked) -> str:
    return await market.campaigns.scalar("SELECT status FROM channels WHERE id = :id", id=booked.channel.id)


async def test_an_owner_who_stayed_an_administrator_gets_the_post_and_the_job_records_whose_chat_it_was(market):
    booked = await market.booked()
    owner = market.campaigns.owners.accounts[booked.publisher.id]
    await market.sandbox.set_member(booked.handle, owner["id"], "administrator")
    assert await publish_now(market, booked) == "published"
    job = await market.job(booked)
    assert (job.owner_telegram_user_id, job.chat_id) == (owner["id"], booked.channel.chat_id)
    assert len(await market.posts(booked)) == 1


@pytest.mark.parametrize("lost_as", ["member", "left"])
async def test_an_owner_who_lost_admin_rights_gets_no_post_the_advertiser_is_refunded_and_the_listing_suspended(
        market, lost_as):
    booked = await market.booked()
    owner = market.campaigns.owners.accounts[booked.publisher.id]
    await market.sandbox.set_member(booked.handle, owner["id"], lost_as)
    assert await publish_now(market, booked) == "failed"
    job = await market.job(booked)
    assert job.failure_reason.startswith(f"{Reason.CHANNEL_OWNERSHIP_LOST}:")
    assert await market.posts(booked) == []
    assert await market.target_status(booked) == "failed"
    assert await channel_status(market, booked) == "suspended"
    await escrow_becomes(market, booked, "refunded")


async def test_an_owner_who_unlinked_the_telegram_account_gets_no_post(market):
    booked = await market.booked()
    await market.campaigns.call("UnlinkTelegramAccount", cpb.UnlinkTelegramAccountRequest(), booked.publisher)
    market.campaigns.owners.accounts.pop(booked.publisher.id)
    assert await publish_now(market, booked) == "failed"
    assert (await market.job(booked)).failure_reason.startswith(f"{Reason.CHANNEL_OWNERSHIP_LOST}:")
    assert await market.posts(booked) == []
    assert await channel_status(market, booked) == "suspended"


@pytest.mark.parametrize("refusal_mode", ["not_admin", "blocked", "not_found"])
async def test_a_bot_that_can_no_longer_post_fails_the_job_and_suspends_the_listing(market, refusal_mode):
    booked = await market.booked()
    await market.sandbox.refuse(booked.handle, refusal_mode)
    try:
        assert await publish_now(market, booked) == "failed"
    finally:
        await market.sandbox.refuse(booked.handle, "off")
    assert (await market.job(booked)).failure_reason.startswith(f"{Reason.CHANNEL_CANNOT_POST}:")
    assert await channel_status(market, booked) == "suspended"
    await escrow_becomes(market, booked, "refunded")


async def test_a_suspended_listing_publishes_nothing_more_until_resubmitted_and_approved_again(market):
    first = await market.booked()
    owner = market.campaigns.owners.accounts[first.publisher.id]
    await market.sandbox.set_member(first.handle, owner["id"], "member")
    assert await publish_now(market, first) == "failed"
    await market.sandbox.set_member(first.handle, owner["id"], "creator")
    # Suspended: no new booking reaches moderation's approve.
    code, reason = await refusal(market.campaigns.call("ResubmitChannel", cpb.ResubmitChannelRequest(
        channel_id=first.channel.id), publisher()))
    assert code == grpc.StatusCode.PERMISSION_DENIED
    resubmitted = (await market.campaigns.call("ResubmitChannel", cpb.ResubmitChannelRequest(
        channel_id=first.channel.id), first.publisher)).channel
    assert resubmitted.status == "pending" and resubmitted.HasField("verified_at")
