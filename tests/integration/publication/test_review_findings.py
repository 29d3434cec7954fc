"""Review findings, as failing tests.

1. Lock order: cancel_target locks the target, then its post job
   (usecases/targets.py); recording a published post locks the post job,
   then the target (publication_store._RECORD_PUBLISHED). A cancel racing
   the record deadlocks; PostgreSQL aborts one of them. When it aborts the
   record, the post is out in the channel while the job stays `publishing`
   until its lease runs out, then lands in needs_review for an admin.
   Expected: the record commits (published) and the cancel answers 409.

2. A job in review whose post is known to be out (its worker's late answer
   was noted on it: message id and link) can still be resolved "retry":
   the job is queued again and the next pass sends a second post.
   Expected: "retry" is refused (409) once the message is known.

3. A read timeout on getChat (the chat lookup publish() makes before the
   send when the job has no chat id) is classified `maybe_delivered` and
   sends the job to needs_review, though nothing could have been posted.
   Expected: the job is queued again (a transient error), no admin needed.
"""
import asyncio

import grpc
import sqlalchemy as sa

from services.campaigns.publication import PublicationPolicy
from services.campaigns.telegram import TelegramChannels
from services.campaigns.usecases.publication import Publication

from adtech.campaigns.v1 import campaigns_pb2 as cpb
from tests.harness import eventually


async def _lock_waiters(market) -> int:
    return await market.campaigns.scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()")


async def test_cancel_racing_the_record_of_a_published_post_neither_deadlocks_nor_strands_the_job(market):
    booked = await market.booked()
    await market.its_time_comes(booked)
    worker = market.worker()
    holder = await worker.holder.ensure()
    try:
        claimed = [job for job in await worker.publication.claim_posts(holder)
                   if str(job.target_id) == booked.target.id]
        assert len(claimed) == 1
        job = claimed[0]

        async with market.campaigns.engine.connect() as blocker:
            # Someone holds the target row for a moment (any target move does).
            await blocker.execute(sa.text("SELECT 1 FROM targets WHERE id = :t FOR UPDATE"), {"t": booked.target.id})
            # The advertiser cancels: it queues first for the target row...
            cancel = asyncio.create_task(market.campaigns.call("CancelTarget", cpb.CancelTargetRequest(
                campaign_id=booked.campaign.id, target_id=booked.target.id), booked.advertiser))
            await eventually(lambda: _waiting(market, 1), timeout=5, interval=0.01)
            # ...the worker posts and records: it locks the job, then queues for the target.
            publish = asyncio.create_task(worker.publication.publish(job, holder))
            await eventually(lambda: _waiting(market, 2), timeout=10, interval=0.01)
            await blocker.rollback()
        cancelled, published = await asyncio.gather(cancel, publish, return_exceptions=True)
    finally:
        await worker.holder.close()

    assert len(await market.posts(booked)) == 1  # the post is out either way
    assert published == "published", f"record of the sent post failed: {published!r}"
    assert await market.job_status(booked) == "published"
    assert isinstance(cancelled, grpc.aio.AioRpcError) and cancelled.code() == grpc.StatusCode.ABORTED, cancelled


async def _waiting(market, count: int) -> bool:
    return await _lock_waiters(market) >= count


async def test_retry_of_a_job_in_review_whose_post_is_known_to_be_out_never_sends_a_second_post(market):
    booked = await market.booked()
    await market.its_time_comes(booked)
    await market.sandbox.fault("sendMessage", "stall_after_post", stall_s=2)
    slow, other = market.worker(lease_s=0.3), market.worker()
    holder = await slow.holder.ensure()
    try:
        [job] = [j for j in await slow.publication.claim_posts(holder) if str(j.target_id) == booked.target.id]
        publishing = asyncio.create_task(slow.publication.publish(job, holder))
        await eventually(lambda: market.posts(booked), timeout=10)  # the post is out, its answer held

        async def in_review():
            await other.run_once()  # the lease ran out: swept into review
            return await market.job_status(booked) == "needs_review"
        await eventually(in_review, timeout=5, interval=0.05)
        assert await publishing == "needs_review"  # the late answer is noted on the job
        noted = await market.job(booked)
        assert noted.message_id is not None and noted.message_url

        try:
            await market.resolve(booked, "retry")
        except grpc.aio.AioRpcError as error:
            assert error.code() == grpc.StatusCode.ABORTED
        await market.passes(other, 10, pause_s=0.02)
    finally:
        await slow.holder.close()
        await other.holder.close()
    assert len(await market.posts(booked)) == 1, "a second post of one job went out"


async def test_a_timeout_of_the_ownership_lookup_before_any_send_queues_the_job_again_instead_of_review(market):
    booked = await market.booked()
    await market.its_time_comes(booked)
    worker = market.worker()
    holder = await worker.holder.ensure()
    async with TelegramChannels(market.sandbox.api_url, market.sandbox.token, timeout_s=0.5) as channels:
        publication = Publication(market.db, channels, PublicationPolicy(backoff_base_s=0.05))
        await market.sandbox.fault("getChatMember", "stall_after_post", stall_s=2)
        try:
            [job] = [j for j in await publication.claim_posts(holder) if str(j.target_id) == booked.target.id]
            status = await publication.publish(job, holder)
        finally:
            await worker.holder.close()
    assert await market.posts(booked) == []  # nothing was sent
    assert status == "queued", f"a getChatMember timeout left the job in {status}"
