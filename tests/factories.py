"""Builders of test data through the services' real gRPC APIs, with random
ids per test. `Actors` carries one user per role."""
import dataclasses
import datetime as dt
import uuid

from adtech.campaigns.v1 import campaigns_pb2
from adtech.payments.v1 import payments_pb2
from common.auth import Actor, acting_as
from common.timestamps import to_timestamp, utcnow
from tests.harness import free_slot


def new_actor(role: str) -> Actor:
    return Actor(str(uuid.uuid4()), role)


def handle() -> str:
    return f"@ch_{uuid.uuid4().hex[:12]}"


@dataclasses.dataclass
class World:
    """Stubs of the running services, and the publishers' Telegram accounts
    (`owners`, tests/telegram_owners.py)."""
    campaigns: object
    payments: object
    moderation: object
    owners: object
    admin: Actor = dataclasses.field(default_factory=lambda: new_actor("admin"))

    async def approved_channel(self, price: int = 1_000, publisher: Actor | None = None, *,
                               auto_accept: bool = True):
        """A channel its publisher owns in Telegram, approved; by default it
        auto-accepts, so an approve queues its post as before consent existed."""
        publisher = publisher or new_actor("publisher")
        name = handle()
        await self.owners.own(publisher, name)
        with acting_as(publisher):
            channel = (await self.campaigns.CreateChannel(campaigns_pb2.CreateChannelRequest(
                title="Daily news", handle=name, price_per_post=price, auto_accept=auto_accept))).channel
        with acting_as(self.admin):
            channel = (await self.campaigns.ApproveChannel(campaigns_pb2.ApproveChannelRequest(channel_id=channel.id))).channel
        return channel

    async def fund(self, user: Actor, amount: int) -> None:
        with acting_as(user):  # the owner's first read opens the wallet
            await self.payments.GetWallet(payments_pb2.GetWalletRequest(user_id=user.id))
        with acting_as(self.admin):
            await self.payments.Deposit(payments_pb2.DepositRequest(
                user_id=user.id, amount=amount, idempotency_key=uuid.uuid4().hex))

    async def active_campaign(self, advertiser: Actor):
        with acting_as(advertiser):
            campaign = (await self.campaigns.CreateCampaign(campaigns_pb2.CreateCampaignRequest(
                name="Winter sale", creatives=[campaigns_pb2.NewCreative(text="Buy now")]))).campaign
            return (await self.campaigns.ChangeCampaignStatus(campaigns_pb2.ChangeCampaignStatusRequest(
                campaign_id=campaign.id, action="activate"))).campaign

    async def submitted_target(self, advertiser: Actor, campaign, channel, *, ahead: dt.timedelta | None = None):
        at = utcnow() + ahead if ahead is not None else free_slot()
        with acting_as(advertiser):
            target = (await self.campaigns.CreateTarget(campaigns_pb2.CreateTargetRequest(
                campaign_id=campaign.id, channel_id=channel.id, scheduled_at=to_timestamp(at)))).target
            return (await self.campaigns.SubmitTarget(campaigns_pb2.SubmitTargetRequest(
                campaign_id=campaign.id, target_id=target.id))).target

    async def ready_to_approve(self, *, price: int = 1_000, funds: int = 10_000):
        """An advertiser with `funds`, an active campaign and one submitted target."""
        advertiser = new_actor("advertiser")
        channel = await self.approved_channel(price)
        if funds:
            await self.fund(advertiser, funds)
        campaign = await self.active_campaign(advertiser)
        target = await self.submitted_target(advertiser, campaign, channel)
        return advertiser, campaign, target
