"""A real campaigns server on a fresh database per test module, and a
client that calls it as a given actor and builds the usual fixtures
(an approved channel, an active campaign with a creative, a target)."""
import dataclasses
import datetime as dt
import uuid

import grpc
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from adtech.campaigns.v1 import campaigns_pb2 as pb
from adtech.campaigns.v1 import campaigns_pb2_grpc
from common.auth import SYSTEM, Actor, acting_as
from tests.harness import free_slot
from common.clients import open_channel
from common.db import database_url_for
from common.grpc_errors import reason_of
from common.timestamps import to_timestamp, utcnow
from tests import harness
from tests.telegram_owners import Owners


def advertiser() -> Actor:
    return Actor(str(uuid.uuid4()), "advertiser")


def publisher() -> Actor:
    return Actor(str(uuid.uuid4()), "publisher")


def admin() -> Actor:
    return Actor(str(uuid.uuid4()), "admin")


def new_id() -> str:
    return str(uuid.uuid4())


def later(**delta) -> dt.datetime:
    return utcnow() + dt.timedelta(**(delta or {"hours": 1}))


@dataclasses.dataclass
class Refusal:
    code: grpc.StatusCode
    reason: str | None
    message: str


@dataclasses.dataclass
class CampaignsClient:
    stub: campaigns_pb2_grpc.CampaignsServiceStub
    engine: object  # the service's own database, for asserting effects
    servicer: object  # to steer its clock
    owners: Owners  # the publishers' Telegram accounts

    async def call(self, method: str, request, actor: Actor = SYSTEM):
        with acting_as(actor):
            return await getattr(self.stub, method)(request)

    async def refusal(self, method: str, request, actor: Actor = SYSTEM) -> Refusal:
        """The refusal of a call that must fail."""
        try:
            await self.call(method, request, actor)
        except grpc.aio.AioRpcError as error:
            return Refusal(error.code(), reason_of(error), error.details())
        raise AssertionError(f"{method} succeeded but should have been refused")

    async def scalar(self, sql: str, **params):
        async with self.engine.connect() as conn:
            return await conn.scalar(sa.text(sql), params)

    async def rows(self, sql: str, **params):
        async with self.engine.connect() as conn:
            return (await conn.execute(sa.text(sql), params)).all()

    # ---- builders
    async def channel(self, owner: Actor | None = None, *, approve: bool = True, price: int = 5000,
                      currency: str = "USD", auto_accept: bool = True) -> pb.Channel:
        """A channel `owner` owns in Telegram (its account linked, the chat's
        creator), listed, and approved unless told otherwise."""
        owner = owner or publisher()
        handle = f"@ch_{uuid.uuid4().hex[:12]}"
        await self.owners.own(owner, handle)
        channel = (await self.call("CreateChannel", pb.CreateChannelRequest(
            title="Daily deals", handle=handle, price_per_post=price, currency=currency, auto_accept=auto_accept),
            owner)).channel
        if approve:
            channel = (await self.call("ApproveChannel", pb.ApproveChannelRequest(channel_id=channel.id),
                                       admin())).channel
        return channel

    async def campaign(self, owner: Actor, *, creatives: int = 1, activate: bool = True, **fields) -> pb.Campaign:
        campaign = (await self.call("CreateCampaign", pb.CreateCampaignRequest(
            name="Spring sale", creatives=[pb.NewCreative(text=f"Buy now #{i}") for i in range(creatives)],
            **fields), owner)).campaign
        if activate:
            campaign = await self.change(campaign.id, "activate", owner)
        return campaign

    async def change(self, campaign_id: str, action: str, actor: Actor) -> pb.Campaign:
        return (await self.call("ChangeCampaignStatus", pb.ChangeCampaignStatusRequest(
            campaign_id=campaign_id, action=action), actor)).campaign

    async def target(self, owner: Actor, campaign_id: str, channel_id: str, *, at: dt.datetime | None = None,
                     submit: bool = False) -> pb.Target:
        target = (await self.call("CreateTarget", pb.CreateTargetRequest(
            campaign_id=campaign_id, channel_id=channel_id, scheduled_at=to_timestamp(at or free_slot())),
            owner)).target
        if submit:
            target = await self.submit(owner, campaign_id, target.id)
        return target

    async def submit(self, owner: Actor, campaign_id: str, target_id: str) -> pb.Target:
        return (await self.call("SubmitTarget", pb.SubmitTargetRequest(
            campaign_id=campaign_id, target_id=target_id), owner)).target

    async def submitted_target(self, owner: Actor | None = None):
        """An owner, an active campaign with a creative, an approved channel
        and a target submitted for moderation."""
        owner = owner or advertiser()
        channel = await self.channel()
        campaign = await self.campaign(owner)
        target = await self.target(owner, campaign.id, channel.id, submit=True)
        return owner, campaign, target

    async def reserve(self, target_id: str, decision_id: str):
        return await self.call("ReserveTarget", pb.ReserveTargetRequest(target_id=target_id, decision_id=decision_id))

    async def release(self, target_id: str, decision_id: str):
        return await self.call("ReleaseTarget", pb.ReleaseTargetRequest(target_id=target_id, decision_id=decision_id))

    async def approve(self, target_id: str, decision_id: str, escrow_id: str | None = None):
        return await self.call("ApproveTarget", pb.ApproveTargetRequest(
            target_id=target_id, decision_id=decision_id, moderator_id=new_id(), escrow_id=escrow_id or new_id()))

    async def status_of(self, target_id: str) -> str:
        return await self.scalar("SELECT status FROM targets WHERE id = :id", id=target_id)


async def start_campaigns(pg_server, data_dir, **overrides):
    name = await harness.fresh_database(pg_server, "campaigns")
    settings = harness.settings_for("campaigns", pg_server, data_dir, campaigns_database=name, **overrides)
    running = await harness.start("campaigns", settings)
    channel = open_channel(f"127.0.0.1:{running.port}", harness.INTERNAL_TOKEN, 10_000)
    engine = create_async_engine(database_url_for(pg_server, name))
    servicer = running.assembly.registrations[0][1]
    stub = campaigns_pb2_grpc.CampaignsServiceStub(channel)
    return running, channel, CampaignsClient(stub, engine, servicer, Owners(stub, servicer, harness.sandbox()))


@pytest.fixture(scope="module")
async def campaigns(pg_server, data_dir):
    # No payments here: refunds wait in the outbox (the cascade module wires a real one).
    running, channel, client = await start_campaigns(
        pg_server, data_dir, payments_addr=f"127.0.0.1:{harness.free_port()}", grpc_deadline_ms=300)
    yield client
    await channel.close()
    await client.engine.dispose()
    await running.stop(0.5)
