"""The after-approval loop, wired for real: a payments server and a
campaigns server (its outbox relay delivering releases and refunds to
payments) on fresh databases, the session's Bot API sandbox as Telegram,
and publisher workers, in-process (`PublisherWorker`) or as their own OS
processes (`python -m services.campaigns.publisher`), so a test can kill
one with SIGKILL at the moment it chooses.

A `Market` books approved targets the way the approve saga leaves them
(reserved, escrow held in payments, approved with one queued post job)
and reads what each service and the sandbox hold."""
import asyncio
import dataclasses
import os
import signal
import subprocess
import sys

import pytest
import sqlalchemy as sa

from adtech.campaigns.v1 import campaigns_pb2 as cpb
from adtech.payments.v1 import payments_pb2 as ppb
from common import holders
from common.auth import Actor
from common.db import Database, database_url_for
from services.campaigns.publication import PublicationPolicy
from services.campaigns.publisher import PublisherWorker
from services.campaigns.telegram import TelegramChannels
from services.campaigns.usecases.consent import Consent
from services.campaigns.usecases.publication import Publication
from tests import harness
from tests.integration.campaigns.conftest import CampaignsClient, admin, advertiser, new_id, publisher, start_campaigns
from tests.integration.payments.conftest import ADMIN, PaymentsClient

PRICE = 2_000
FEE_BPS = 1000
FEE = PRICE * FEE_BPS // 10_000
PAYOUT = PRICE - FEE
# Windows of the campaigns service (an admin's resolve plans the checks
# with them) and of the workers: checks due almost at once.
RETENTION_S = 0.2
CHECKS = 2


@dataclasses.dataclass
class Booked:
    """An approved target with its escrow held and its post job queued."""
    advertiser: Actor
    publisher: Actor
    channel: cpb.Channel
    campaign: cpb.Campaign
    target: cpb.Target

    @property
    def handle(self) -> str:
        return self.channel.handle


@dataclasses.dataclass
class Market:
    campaigns: CampaignsClient
    payments: PaymentsClient
    sandbox: object
    pg_server: str
    campaigns_database: str
    data_dir: object
    db: Database  # campaigns' database, for in-process workers
    channels: TelegramChannels

    # ---- booking
    async def booked(self, *, price: int = PRICE, funds: int | None = None, auto_accept: bool = True,
                     at=None, on: Booked | None = None) -> Booked:
        """A target approved as the approve saga leaves it: the advertiser
        deposited `funds` (default: the price) and the price is in escrow;
        its post job queued, or awaiting the channel owner's answer when the
        channel does not `auto_accept`. In a new channel, or `on` the
        channel of another booking (its price and auto_accept)."""
        owner = advertiser()
        if on is None:
            owner_of_channel = publisher()
            channel = await self.campaigns.channel(owner_of_channel, price=price, auto_accept=auto_accept)
        else:
            owner_of_channel, channel, price = on.publisher, on.channel, on.channel.price_per_post
        campaign = await self.campaigns.campaign(owner)
        target = await self.campaigns.target(owner, campaign.id, channel.id, submit=True, at=at)
        decision = new_id()
        snapshot = (await self.campaigns.reserve(target.id, decision)).snapshot
        await self.payments.deposit(owner.id, price if funds is None else funds)
        escrow = (await self.payments.hold(target.id, owner.id, price, decision_id=decision,
                                           publisher_id=snapshot.publisher_id)).escrow
        await self.campaigns.approve(target.id, decision, escrow.id)
        return Booked(owner, owner_of_channel, channel, campaign, target)

    async def its_time_comes(self, *booked: Booked) -> None:
        """The post jobs fall due now (instead of at scheduledAt, a day
        ahead): the test's clock, moved for the workers' claims only."""
        async with self.campaigns.engine.begin() as conn:
            await conn.execute(sa.text("UPDATE post_jobs SET due_at = now() WHERE target_id = ANY(CAST(:ids AS uuid[]))"),
                               {"ids": [b.target.id for b in booked]})

    # ---- reading
    async def job(self, booked: Booked):
        rows = await self.campaigns.rows("SELECT * FROM post_jobs WHERE target_id = :t", t=booked.target.id)
        return rows[0]

    async def job_status(self, booked: Booked) -> str:
        return (await self.job(booked)).status

    async def target_status(self, booked: Booked) -> str:
        return await self.campaigns.status_of(booked.target.id)

    async def posts(self, booked: Booked) -> list[dict]:
        return await self.sandbox.posts(booked.handle)

    async def escrow(self, booked: Booked):
        return (await self.payments.call("GetEscrow", ppb.GetEscrowRequest(target_id=booked.target.id), ADMIN)).escrow

    async def resolve(self, booked: Booked, outcome: str, *, message_url: str = "", reason: str = ""):
        job = await self.job(booked)
        return (await self.campaigns.call("ResolvePostJob", cpb.ResolvePostJobRequest(
            post_job_id=str(job.id), outcome=outcome, message_url=message_url, reason=reason), admin())).post_job

    # ---- workers
    def worker(self, **policy) -> PublisherWorker:
        """A worker in this process with its own holder lock."""
        policy = PublicationPolicy(**{"retention_s": RETENTION_S, "checks": CHECKS, "poll_s": 0.05,
                                      "backoff_base_s": 0.05, "backoff_cap_s": 0.2, **policy})
        return PublisherWorker(Publication(self.db, self.channels, policy),
                               holders.HolderSession(self.db.dsn, holders.PUBLISHER_HOLDERS), policy, Consent(self.db))

    async def passes(self, worker: PublisherWorker, count: int, pause_s: float = 0.0) -> None:
        for _ in range(count):
            await worker.run_once()
            if pause_s:
                await asyncio.sleep(pause_s)

    def publisher_process(self, **env) -> subprocess.Popen:
        """`python -m services.campaigns.publisher` as its own OS process,
        on this market's database and the session's sandbox."""
        settings = {"database_url": self.pg_server, "campaigns_database": self.campaigns_database,
                    "telegram_api_url": self.sandbox.api_url, "telegram_bot_token": self.sandbox.token,
                    "adtech_data_dir": str(self.data_dir), "adtech_internal_token": harness.INTERNAL_TOKEN,
                    "publisher_poll_ms": 50, "post_retention_s": RETENTION_S, "post_checks": CHECKS,
                    "log_level": "WARNING", **env}
        return subprocess.Popen([sys.executable, "-m", "services.campaigns.publisher"],
                                env={**os.environ, **{k.upper(): str(v) for k, v in settings.items()}})

    async def holders_alive(self) -> int:
        """Publisher holder locks held in campaigns' database now."""
        return await self.campaigns.scalar(
            """SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database
                WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
                  AND l.classid = CAST(:kind AS oid) AND d.datname = current_database()""",
            kind=holders.PUBLISHER_HOLDERS)

    # ---- money
    async def wallet(self, user: Actor):
        return await self.payments.wallet(user.id)

    async def assert_reconciled(self) -> None:
        await self.payments.assert_reconciled()


def kill(process: subprocess.Popen) -> None:
    """SIGKILL: no handler runs, nothing is committed after this instant."""
    process.send_signal(signal.SIGKILL)
    process.wait(10)


async def start_payments(pg_server, data_dir):
    from sqlalchemy.ext.asyncio import create_async_engine
    from adtech.payments.v1 import payments_pb2_grpc
    from common.clients import open_channel

    database = await harness.fresh_database(pg_server, "payments")
    settings = harness.settings_for("payments", pg_server, data_dir, payments_database=database,
                                    platform_fee_bps=FEE_BPS)
    service = await harness.start("payments", settings)
    channel = open_channel(f"127.0.0.1:{service.port}", harness.INTERNAL_TOKEN, 10_000)
    engine = create_async_engine(database_url_for(pg_server, database))
    return service, channel, PaymentsClient(payments_pb2_grpc.PaymentsServiceStub(channel), engine)


@pytest.fixture(scope="module")
async def market(pg_server, data_dir, telegram_sandbox):
    pay_service, pay_channel, payments = await start_payments(pg_server, data_dir)
    running, channel, campaigns = await start_campaigns(
        pg_server, data_dir, payments_addr=f"127.0.0.1:{pay_service.port}", post_retention_s=RETENTION_S,
        post_checks=CHECKS, outbox_poll_ms=50, outbox_backoff_base_ms=20, outbox_backoff_cap_ms=200)
    name = campaigns.engine.url.database
    db = Database(database_url_for(pg_server, name), pool_size=12)
    channels = TelegramChannels(telegram_sandbox.api_url, telegram_sandbox.token)
    await channels.start()
    try:
        yield Market(campaigns, payments, telegram_sandbox, pg_server, name, data_dir, db, channels)
    finally:
        await channels.close()
        await db.dispose()
        await channel.close()
        await campaigns.engine.dispose()
        await running.stop(0.5)
        await pay_channel.close()
        await payments.engine.dispose()
        await pay_service.stop(0.5)


@pytest.fixture(autouse=True)
async def no_faults_left(telegram_sandbox):
    yield
    await telegram_sandbox._request("DELETE", "/sandbox/faults")
