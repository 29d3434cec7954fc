"""Composition root of the payments service."""
from pydantic import Field, model_validator

from adtech.payments.v1 import payments_pb2_grpc
from common.bootstrap import Assembly, open_database, run_service
from common.migrations import upgrade_async
from common.settings import PAYMENTS_DATABASE, PAYMENTS_PORT, CommonSettings
from services.payments.api import PaymentsServicer
from services.payments.domain import DEFAULT_CURRENCY
from services.payments.usecases import Payments


class Settings(CommonSettings):
    payments_database: str = Field(default=PAYMENTS_DATABASE, description="Database payments owns")
    payments_port: int = Field(default=PAYMENTS_PORT, ge=0, le=65535, description="gRPC port of the payments service")
    platform_fee_bps: int = Field(default=1000, ge=0, le=10_000,
                                  description="Platform fee taken on escrow release, in basis points (floored)")
    platform_currency: str = Field(
        default=DEFAULT_CURRENCY, pattern=r"^[A-Z]{3}$",
        description="The one currency the platform trades in (ISO 4217): deposits, holds and withdrawals in "
                    "another are refused")
    payments_migrate_on_start: bool = Field(default=True,
                                            description="Apply the payments database migrations when the service starts")
    payments_pool_size: int = Field(default=10, ge=1, le=200, description="Database connections payments keeps open")
    payments_hold_batch_size: int = Field(
        default=32, ge=1, le=1000, description="Most escrow holds one statement carries out together")
    payments_hold_batches: int = Field(
        default=4, ge=1, le=200, description="Most hold statements running at once; holds asked for meanwhile "
                                             "queue and leave together in the next")

    @model_validator(mode="after")
    def _batches_have_sessions(self):
        # Each running hold statement holds a session; more batches than
        # sessions would only queue for them, with the others' use cases.
        if self.payments_hold_batches > self.payments_pool_size:
            raise ValueError("PAYMENTS_HOLD_BATCHES must not exceed PAYMENTS_POOL_SIZE")
        return self


async def assemble(settings: Settings) -> Assembly:
    db = await open_database(settings, settings.payments_database, pool_size=settings.payments_pool_size)
    if settings.payments_migrate_on_start:
        # Idempotent and serialised by an advisory lock: replicas may all run it.
        await upgrade_async("payments", db.url)
    servicer = PaymentsServicer(Payments(db, settings.platform_fee_bps, hold_batch_size=settings.payments_hold_batch_size,
                                         hold_batches=settings.payments_hold_batches),
                                settings.platform_currency)
    return Assembly(
        registrations=[(payments_pb2_grpc.add_PaymentsServiceServicer_to_server, servicer,
                        "adtech.payments.v1.PaymentsService")],
        closers=[db.dispose])


def main() -> None:
    run_service("payments", Settings, lambda s: s.payments_port, assemble)


if __name__ == "__main__":
    main()
