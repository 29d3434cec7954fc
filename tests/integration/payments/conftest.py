"""A real payments server on a fresh database per test module, and helpers
to call it as a given actor."""
import dataclasses
import uuid

import grpc
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from adtech.payments.v1 import payments_pb2 as pb
from adtech.payments.v1 import payments_pb2_grpc
from common.auth import SYSTEM, Actor, acting_as
from common.clients import open_channel
from common.db import database_url_for
from common.grpc_errors import reason_of
from tests import harness

ADMIN = Actor(str(uuid.uuid4()), "admin")


def new_id() -> str:
    return str(uuid.uuid4())


@dataclasses.dataclass
class PaymentsClient:
    stub: payments_pb2_grpc.PaymentsServiceStub
    engine: object  # raw access to the service's database, for invariant checks

    async def call(self, method: str, request, actor: Actor = SYSTEM):
        with acting_as(actor):
            return await getattr(self.stub, method)(request)

    async def open_wallet(self, user_id: str, currency: str = ""):
        """The owner's first read, which opens the wallet."""
        return await self.call("GetWallet", pb.GetWalletRequest(user_id=user_id, currency=currency),
                               Actor(user_id, "advertiser"))

    async def deposit(self, user_id: str, amount: int, key: str | None = None, reference: str = "", currency: str = ""):
        await self.open_wallet(user_id, currency)
        return await self.call("Deposit", pb.DepositRequest(
            user_id=user_id, amount=amount, currency=currency, idempotency_key=key or new_id(), reference=reference),
            ADMIN)

    async def hold(self, target_id: str, advertiser_id: str, amount: int, *, decision_id: str | None = None,
                   publisher_id: str | None = None, currency: str = "USD"):
        return await self.call("HoldEscrow", pb.HoldEscrowRequest(
            target_id=target_id, decision_id=decision_id or new_id(), advertiser_id=advertiser_id,
            publisher_id=publisher_id or new_id(), amount=amount, currency=currency))

    async def wallet(self, user_id: str, currency: str = ""):
        return (await self.call("GetWallet", pb.GetWalletRequest(user_id=user_id, currency=currency))).wallet

    async def reconcile(self):
        return await self.call("Reconcile", pb.ReconcileRequest())

    async def assert_reconciled(self):
        report = await self.reconcile()
        assert report.ok, [(c.name, c.detail) for c in report.checks if not c.ok]

    async def scalar(self, sql: str, **params):
        async with self.engine.connect() as conn:
            return await conn.scalar(sa.text(sql), params)


async def refusal(awaitable) -> tuple[grpc.StatusCode, str | None]:
    """The status code and ErrorInfo reason of a call expected to fail."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await awaitable
    return caught.value.code(), reason_of(caught.value)


@pytest.fixture(scope="module")
async def payments(pg_server, data_dir):
    async for client in _payments_server(pg_server, data_dir):
        yield client


@pytest.fixture(scope="module")
async def payments_alone(pg_server, data_dir):
    """A second server on its own database: for a test whose ledger totals no
    other test may touch (the platform trades in one currency only)."""
    async for client in _payments_server(pg_server, data_dir):
        yield client


async def _payments_server(pg_server, data_dir):
    database = await harness.fresh_database(pg_server, "payments")
    settings = harness.settings_for("payments", pg_server, data_dir, payments_database=database,
                                    platform_fee_bps=1000, payments_pool_size=20)
    service = await harness.start("payments", settings)
    channel = open_channel(f"127.0.0.1:{service.port}", harness.INTERNAL_TOKEN, 10_000)
    engine = create_async_engine(database_url_for(pg_server, database))
    try:
        yield PaymentsClient(payments_pb2_grpc.PaymentsServiceStub(channel), engine)
    finally:
        await channel.close()
        await engine.dispose()
        await service.stop(0)
