"""Composition root of moderation: database, peers, the decisions' sagas (with their relay), servicers."""
from pydantic import Field

from adtech.campaigns.v1 import campaigns_pb2_grpc
from adtech.moderation.v1 import moderation_pb2_grpc
from adtech.ops.v1 import ops_pb2_grpc
from adtech.payments.v1 import payments_pb2_grpc
from common.bootstrap import Assembly, open_database, peer, run_service
from common.migrations import upgrade_async
from common.outbox import OutboxSettings
from common.outbox_ops import OpsServicer
from common.settings import MODERATION_DATABASE, MODERATION_PORT
from services.moderation.api import ModerationServicer
from services.moderation.saga import DecisionSagas
from services.moderation.usecases import Moderation


class Settings(OutboxSettings):
    moderation_database: str = Field(default=MODERATION_DATABASE, description="Moderation's database name")
    moderation_port: int = Field(default=MODERATION_PORT, ge=0, le=65535, description="Moderation's gRPC port")
    moderation_db_pool_size: int = Field(default=20, ge=1, le=200, description="Moderation's connection pool size")
    moderation_migrate_on_start: bool = Field(default=True, description="Apply the moderation database migrations when the service starts")


async def assemble(settings: Settings) -> Assembly:
    db = await open_database(settings, settings.moderation_database, pool_size=settings.moderation_db_pool_size)
    if settings.moderation_migrate_on_start:
        await upgrade_async("moderation", db.url)
    campaigns_channel = peer(settings, settings.campaigns_addr)
    payments_channel = peer(settings, settings.payments_addr)
    campaigns = campaigns_pb2_grpc.CampaignsServiceStub(campaigns_channel)
    saga = DecisionSagas(db, campaigns, payments_pb2_grpc.PaymentsServiceStub(payments_channel),
                         settings.relay_policy())
    await saga.relay.start()  # the holder lock first: approves write messages born claimed by it

    async def close() -> None:
        await saga.relay.stop()
        await campaigns_channel.close()
        await payments_channel.close()
        await db.dispose()

    return Assembly(
        registrations=[
            (moderation_pb2_grpc.add_ModerationServiceServicer_to_server, ModerationServicer(Moderation(db, campaigns, saga)),
             "adtech.moderation.v1.ModerationService"),
            (ops_pb2_grpc.add_OpsServiceServicer_to_server, OpsServicer(db), "adtech.ops.v1.OpsService"),
        ],
        workers=[saga.relay.run],
        closers=[close],
    )


def main() -> None:
    run_service("moderation", Settings, lambda s: s.moderation_port, assemble)


if __name__ == "__main__":
    main()
