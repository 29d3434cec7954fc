"""A proof check that meets a transient Bot API error is tried again later,
each time a little later than the time before (never a probe every few
seconds through a long outage), and a check that passes starts the count
again; the post is neither failed nor paid meanwhile."""
import datetime as dt

from tests.harness import eventually


async def test_failing_checks_back_off_further_each_time_and_a_pass_starts_over(market):
    booked = await market.booked()
    await market.its_time_comes(booked)
    worker = market.worker(backoff_base_s=1.0, backoff_cap_s=60.0, retention_s=60.0, checks=1)
    try:
        async def published():
            await worker.run_once()
            return await market.job_status(booked) == "published"
        await eventually(published, timeout=10, interval=0.05)

        delays = []
        await market.sandbox.fault("editMessageReplyMarkup", "500", 3)
        for failures in (1, 2, 3):
            await market.its_time_comes(booked)
            await worker.run_once()
            job = await market.job(booked)
            assert (job.status, job.check_failures) == ("published", failures)
            delays.append(job.due_at - dt.datetime.now(dt.timezone.utc))
        # base 1 s doubled per failure, with jitter in [0.5, 1]: 0.5-1, 1-2, 2-4 s.
        assert delays[0] < dt.timedelta(seconds=1.1) and delays[2] > dt.timedelta(seconds=1.5), delays

        await market.its_time_comes(booked)
        await worker.run_once()
        job = await market.job(booked)
        assert (job.status, job.check_failures, job.checks_done) == ("published", 0, 1)
        assert await market.target_status(booked) == "published"
    finally:
        await worker.holder.close()
