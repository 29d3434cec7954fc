"""Every business method of every service refuses a caller without the
internal credential or without an acting user; health and reflection stay
open (load balancers, grpcurl)."""
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from adtech.campaigns.v1 import campaigns_pb2
from adtech.moderation.v1 import moderation_pb2
from adtech.ops.v1 import ops_pb2
from adtech.payments.v1 import payments_pb2
from common.auth import ACTOR_ID_KEY, ACTOR_ROLE_KEY, TOKEN_KEY
from tests import harness
from tests.stack import Stack

SERVICES = {  # context → the services it serves
    "campaigns": [campaigns_pb2.DESCRIPTOR.services_by_name["CampaignsService"], ops_pb2.DESCRIPTOR.services_by_name["OpsService"]],
    "moderation": [moderation_pb2.DESCRIPTOR.services_by_name["ModerationService"], ops_pb2.DESCRIPTOR.services_by_name["OpsService"]],
    "payments": [payments_pb2.DESCRIPTOR.services_by_name["PaymentsService"]],
}
METHODS = [(ctx, service.full_name, method.name) for ctx, services in SERVICES.items()
           for service in services for method in service.methods]
ADMIN = ((ACTOR_ID_KEY, "6f1c1f1e-7a6b-4a39-9e0e-3b3b8f6d2a11"), (ACTOR_ROLE_KEY, "admin"))


@pytest.fixture(scope="module")
async def stack(pg_server, data_dir):
    running = await Stack(pg_server, data_dir).start()
    yield running
    await running.close()


async def raw_call(stack, ctx, service, method, metadata):
    """The call as a stranger would make it: a bare channel, no interceptor."""
    async with grpc.aio.insecure_channel(stack.address(ctx)) as channel:
        call = channel.unary_unary(f"/{service}/{method}", request_serializer=lambda _: b"",
                                   response_deserializer=lambda raw: raw)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await call(b"", metadata=metadata, timeout=5)
    return refused.value.code()


@pytest.mark.parametrize("ctx,service,method", METHODS)
async def test_anonymous_call_is_unauthenticated(stack, ctx, service, method):
    assert await raw_call(stack, ctx, service, method, ADMIN) == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize("ctx,service,method", METHODS)
async def test_wrong_internal_credential_is_unauthenticated(stack, ctx, service, method):
    metadata = ((TOKEN_KEY, harness.INTERNAL_TOKEN + "x"),) + ADMIN
    assert await raw_call(stack, ctx, service, method, metadata) == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize("ctx,service,method", METHODS)
async def test_credential_without_acting_user_is_unauthenticated(stack, ctx, service, method):
    metadata = ((TOKEN_KEY, harness.INTERNAL_TOKEN),)
    assert await raw_call(stack, ctx, service, method, metadata) == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize("ctx", sorted(SERVICES))
async def test_health_answers_anyone(stack, ctx):
    async with grpc.aio.insecure_channel(stack.address(ctx)) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
