"""Telegram's flood control met for real: posts due at once in one channel
go out as a burst, the sandbox's per-chat limit (its defaults, Telegram's
figures: docs/sandbox.md) answers the rest 429 with retry_after, and the
publisher waits that long before each of them is tried again; every post
goes out once and nothing is refunded."""
from tests.harness import eventually

BURST = 8  # past the sandbox's default burst of 5 messages to one chat


async def test_a_burst_of_posts_to_one_channel_meets_flood_control_and_each_goes_out_once(market):
    first = await market.booked()
    booked = [first, *[await market.booked(on=first) for _ in range(BURST - 1)]]
    await market.its_time_comes(*booked)
    worker = market.worker()  # one pass claims them all and sends them together
    try:
        await worker.run_once()
        jobs = [await market.job(one) for one in booked]
        waiting = [job for job in jobs if job.status == "queued"]
        assert waiting, "the whole burst went out: flood control was never met"
        for job in waiting:
            assert job.last_error.startswith("Telegram's flood control: retry after 1")
            assert 0.5 <= (job.due_at - job.updated_at).total_seconds() <= 1.5  # Telegram's retry_after, no backoff

        async def all_out() -> bool:
            await worker.run_once()
            return all([await market.target_status(one) in ("published", "completed") for one in booked])
        await eventually(all_out, timeout=20, interval=0.1)
    finally:
        await worker.holder.close()
    posts = await market.posts(first)
    recorded = [(await market.job(one)).message_id for one in booked]
    assert sorted(recorded) == sorted(post["message_id"] for post in posts) == list(range(1, BURST + 1))
    for one in booked:
        assert (await market.escrow(one)).status in ("held", "released")  # never refunded
