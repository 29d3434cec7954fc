"""Outgoing calls carry an acting user or do not leave at all."""
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from adtech.payments.v1 import payments_pb2, payments_pb2_grpc
from common.clients import NoActingUser, open_channel
from tests.harness import free_port


async def test_business_call_without_acting_user_is_refused_before_it_leaves():
    async with open_channel(f"127.0.0.1:{free_port()}", "t" * 32, 500) as channel:
        with pytest.raises(NoActingUser):
            await payments_pb2_grpc.PaymentsServiceStub(channel).GetWallet(payments_pb2.GetWalletRequest())


async def test_health_check_needs_no_acting_user():
    import grpc
    # A deadline far longer than a refused connect takes: the call left, and
    # the closed port refused it (UNAVAILABLE), long before the deadline.
    async with open_channel(f"127.0.0.1:{free_port()}", "t" * 32, 10_000) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as nobody_there:
            await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
    assert nobody_there.value.code() == grpc.StatusCode.UNAVAILABLE
