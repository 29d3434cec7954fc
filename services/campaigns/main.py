"""Composition root of the campaigns service: settings, database, the
payments peer, the Telegram channel adapter (channel approval checks the
bot can post), the servicers and the outbox relay that delivers releases
and refunds. The publisher worker is its own process (publisher.py)."""
import logging

from pydantic import Field

from adtech.campaigns.v1 import campaigns_pb2_grpc
from adtech.ops.v1 import ops_pb2_grpc
from adtech.payments.v1 import payments_pb2_grpc
from common import bootstrap
from common.migrations import upgrade_async
from common.outbox import OutboxSettings, Relay
from common.outbox_ops import OpsServicer
from common.settings import CAMPAIGNS_DATABASE, CAMPAIGNS_PORT
from services.campaigns.api import CampaignsServicer
from services.campaigns.domain import BookingRules
from services.campaigns.settings import PublisherSettings
from services.campaigns.settlements import settlement_handlers
from services.campaigns.telegram import TokenRejected
from services.campaigns.usecases.accounts import TelegramAccounts
from services.campaigns.usecases.campaigns import Campaigns
from services.campaigns.usecases.consent import Consent
from services.campaigns.usecases.publication import Publication
from services.campaigns.usecases.steps import CampaignSteps
from services.campaigns.usecases.targets import Targets

log = logging.getLogger(__name__)


class Settings(OutboxSettings, PublisherSettings):
    campaigns_database: str = Field(default=CAMPAIGNS_DATABASE, description="Database name of the campaigns service")
    campaigns_port: int = Field(default=CAMPAIGNS_PORT, ge=0, le=65535, description="gRPC port of the campaigns service")
    campaign_target_min_lead_ms: int = Field(
        default=30000, ge=0, description="How far ahead of now a target's scheduledAt must be to submit or approve it")
    booking_horizon_days: int = Field(
        default=31, ge=1, le=3650, description="How far ahead a target's scheduledAt may be booked, in days")
    channel_post_gap_minutes: int = Field(
        default=60, ge=1, le=7 * 24 * 60,
        description="Minimum time between two booked posts of one channel, in minutes (one post per slot)")
    platform_currency: str = Field(
        default="USD", pattern=r"^[A-Z]{3}$", description="The one currency channels are priced in (ISO 4217)")
    campaigns_migrate_on_start: bool = Field(
        default=True, description="Apply the campaigns database migrations when the service starts")


async def assemble(settings: Settings) -> bootstrap.Assembly:
    db = await bootstrap.open_database(settings, settings.campaigns_database)
    if settings.campaigns_migrate_on_start:
        await upgrade_async("campaigns", db.url)
    payments_channel = bootstrap.peer(settings, settings.payments_addr)
    relay = Relay(db, settlement_handlers(payments_pb2_grpc.PaymentsServiceStub(payments_channel)),
                  settings.relay_policy())
    channels = settings.channel_adapter()
    try:
        await channels.start()
    except TokenRejected:
        # Campaigns serves on: only channel approvals need the bot (they
        # answer 503 until the token is fixed); refunds must still go out.
        log.error("the Bot API refused TELEGRAM_BOT_TOKEN; channel approvals fail until it is fixed")
    await relay.start()
    rules = BookingRules(min_lead_ms=settings.campaign_target_min_lead_ms,
                         horizon_days=settings.booking_horizon_days,
                         post_gap_minutes=settings.channel_post_gap_minutes)
    servicer = CampaignsServicer(
        Campaigns(db, channels, currency=settings.platform_currency), Targets(db, rules=rules),
        CampaignSteps(db, rules=rules, consent=settings.consent_rules()),
        Publication(db, channels, settings.publication_policy()),
        TelegramAccounts(db, channels, link_ttl_s=settings.telegram_link_ttl_s), Consent(db))

    async def close_peers() -> None:
        await payments_channel.close()
        await channels.close()

    return bootstrap.Assembly(
        registrations=[
            (campaigns_pb2_grpc.add_CampaignsServiceServicer_to_server, servicer, "adtech.campaigns.v1.CampaignsService"),
            (ops_pb2_grpc.add_OpsServiceServicer_to_server, OpsServicer(db), "adtech.ops.v1.OpsService"),
        ],
        workers=[relay.run],
        closers=[close_peers, db.dispose],
    )


def main() -> None:
    bootstrap.run_service("campaigns", Settings, lambda s: s.campaigns_port, assemble)


if __name__ == "__main__":
    main()
