"""Workers racing over the same due jobs share them without overlap: each
post goes out exactly once and each target is published once, whether the
workers are passes in one process or separate processes
(claims are FOR UPDATE SKIP LOCKED, each move guarded by the claim)."""
import asyncio

import pytest

from tests.harness import eventually
from tests.integration.publication.conftest import kill

JOBS = 8


async def published_once(market, booked) -> None:
    assert len(await market.posts(booked)) == 1, booked.handle
    audits = await market.campaigns.scalar(
        "SELECT count(*) FROM audit_log WHERE entity_id = :t AND action = 'target_published'", t=booked.target.id)
    assert audits == 1


async def test_three_workers_passing_concurrently_send_each_due_post_once(market):
    booked = await asyncio.gather(*(market.booked() for _ in range(JOBS)))
    workers = [market.worker(batch=3) for _ in range(3)]
    await market.its_time_comes(*booked)
    try:
        for _ in range(15):
            await asyncio.gather(*(worker.run_once() for worker in workers))
    finally:
        for worker in workers:
            await worker.holder.close()
    for one in booked:
        assert await market.target_status(one) in ("published", "completed")
        await published_once(market, one)


@pytest.mark.slow
async def test_three_publisher_processes_send_each_due_post_once(market):
    booked = await asyncio.gather(*(market.booked() for _ in range(JOBS)))
    processes = [market.publisher_process(post_retention_s=30) for _ in range(3)]
    try:
        await eventually(lambda: _all_holding(market, 3), timeout=15)
        await market.its_time_comes(*booked)

        async def all_published():
            return all([await market.target_status(one) == "published" for one in booked])
        await eventually(all_published, timeout=15, interval=0.05)
        await asyncio.sleep(0.5)  # more passes of every worker
    finally:
        for process in processes:
            kill(process)
    for one in booked:
        await published_once(market, one)


async def _all_holding(market, count) -> bool:
    return await market.holders_alive() >= count
