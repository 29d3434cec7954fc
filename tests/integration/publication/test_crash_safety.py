"""A publisher process killed with SIGKILL never makes a post go out twice
and never strands a job: killed after the Bot API stored the post but
before the worker recorded it, the job goes to needs_review (never back to
the queue) and stays there, with exactly one post in the channel, until an
admin resolves it; killed anywhere else, the job simply resumes with the
next worker and ends as if nothing happened (docs/design.md,
"Publication")."""
import signal

import pytest

from tests.harness import eventually
from tests.integration.publication.conftest import PAYOUT, kill

pytestmark = pytest.mark.slow


async def test_worker_killed_between_the_post_and_its_record_leaves_one_post_and_a_job_in_review(market):
    booked = await market.booked()
    await market.sandbox.fault("sendMessage", "stall_after_post", stall_s=30)
    process = market.publisher_process()
    try:
        await market.its_time_comes(booked)
        posts = await eventually(lambda: market.posts(booked), timeout=15)
        assert await market.job_status(booked) == "publishing"  # the answer is held: nothing recorded yet
    finally:
        kill(process)

    other = market.worker()
    try:
        async def in_review():
            await other.run_once()
            return await market.job_status(booked) == "needs_review"
        await eventually(in_review, timeout=5, interval=0.05)

        await market.passes(other, 30, pause_s=0.02)
        assert await market.job_status(booked) == "needs_review"
        assert await market.target_status(booked) == "approved"
        assert [post["message_id"] for post in await market.posts(booked)] == [posts[0]["message_id"]]
        assert (await market.escrow(booked)).status == "held"

        url = f"https://t.me/{booked.handle.lstrip('@')}/{posts[0]['message_id']}"
        job = await market.resolve(booked, "published", message_url=url)
        assert job.status == "published" and job.message_url == url

        async def completed():
            await other.run_once()
            return await market.target_status(booked) == "completed"
        await eventually(completed, timeout=10, interval=0.05)
    finally:
        await other.holder.close()
    await eventually(lambda: _released(market, booked), timeout=10)
    assert (await market.wallet(booked.publisher)).balance == PAYOUT
    assert (await market.wallet(booked.advertiser)).held == 0
    assert len(await market.posts(booked)) == 1
    await market.assert_reconciled()


async def test_worker_killed_while_idle_leaves_the_job_to_the_next_worker(market):
    booked = await market.booked()
    process = market.publisher_process()
    try:
        await eventually(market.holders_alive, timeout=15)  # up, holding its lock, nothing due
    finally:
        kill(process)
    await market.its_time_comes(booked)

    await another_worker_completes(market, booked, timeout=10)
    assert len(await market.posts(booked)) == 1
    assert (await market.job(booked)).status == "verified"
    await eventually(lambda: _released(market, booked), timeout=10)


async def test_worker_killed_during_a_proof_check_leaves_the_checks_to_the_next_worker(market):
    """The sandbox process is frozen (SIGSTOP) while the check's call is in
    flight, so the worker dies with the call unanswered, as on a real
    network partition."""
    booked = await market.booked()
    process = market.publisher_process(post_retention_s=3, post_checks=2, telegram_timeout_s=15)
    sandbox = market.sandbox.process
    frozen = False
    try:
        await market.its_time_comes(booked)
        await eventually(lambda: _status_is(market, booked, "published"), timeout=15)
        sandbox.send_signal(signal.SIGSTOP)
        frozen = True

        async def check_under_way():
            job = await market.job(booked)
            return job.status == "published" and job.claimed_by is not None
        await eventually(check_under_way, timeout=10)
    finally:
        kill(process)
        if frozen:
            sandbox.send_signal(signal.SIGCONT)

    await another_worker_completes(market, booked, timeout=15)
    job = await market.job(booked)
    assert job.status == "verified" and job.checks_done == 3
    assert len(await market.posts(booked)) == 1
    await eventually(lambda: _released(market, booked), timeout=10)
    assert (await market.wallet(booked.publisher)).balance == PAYOUT


async def _released(market, booked) -> bool:
    return (await market.escrow(booked)).status == "released"


async def _status_is(market, booked, status) -> bool:
    return await market.job_status(booked) == status


async def another_worker_completes(market, booked, *, timeout: float) -> None:
    """A second worker's passes take the target to completed."""
    other = market.worker()
    try:
        async def completed():
            await other.run_once()
            return await market.target_status(booked) == "completed"
        await eventually(completed, timeout=timeout, interval=0.05)
    finally:
        await other.holder.close()
