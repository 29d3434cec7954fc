"""The three services, started for real on fixed free ports in the test's
event loop, each with its own fresh database; a service can be stopped and
started again on its port (a crash or a deploy, as its peers see it)."""
import asyncio
import os
import subprocess
import sys

from adtech.campaigns.v1 import campaigns_pb2_grpc
from adtech.moderation.v1 import moderation_pb2_grpc
from adtech.ops.v1 import ops_pb2_grpc
from adtech.payments.v1 import payments_pb2_grpc
from common.bootstrap import start_service
from common.clients import open_channel
from tests import harness
from tests.factories import World
from tests.telegram_owners import Owners

CONTEXTS = ("payments", "campaigns", "moderation")  # start order: callees first
FAST_OUTBOX = {"outbox_backoff_base_ms": 20, "outbox_backoff_cap_ms": 300, "outbox_poll_ms": 100, "outbox_lease_ms": 2000}


class Stack:
    def __init__(self, pg_server: str, data_dir, **overrides):
        self.pg_server, self.data_dir, self.overrides = pg_server, data_dir, overrides
        self.ports = {ctx: harness.free_port() for ctx in CONTEXTS}
        self.databases: dict[str, str] = {}
        self.running: dict[str, object] = {}
        self.channels = {}

    def address(self, ctx: str) -> str:
        return f"127.0.0.1:{self.ports[ctx]}"

    def settings(self, ctx: str):
        extra = {"campaigns_addr": self.address("campaigns"), "payments_addr": self.address("payments"),
                 "moderation_addr": self.address("moderation"), f"{ctx}_database": self.databases[ctx]}
        if ctx != "payments":
            extra.update(FAST_OUTBOX)
        return harness.settings_for(ctx, self.pg_server, self.data_dir, **{**extra, **self.overrides.get(ctx, {})})

    async def start(self) -> "Stack":
        for ctx in CONTEXTS:
            self.databases[ctx] = await harness.fresh_database(self.pg_server, ctx)
        for ctx in CONTEXTS:
            await self.start_service(ctx)
        self.channels = {ctx: open_channel(self.address(ctx), harness.INTERNAL_TOKEN, 10_000) for ctx in CONTEXTS}
        return self

    async def start_service(self, ctx: str):
        import importlib
        module = importlib.import_module(f"services.{ctx}.main")
        settings = self.settings(ctx)
        assembly = await module.assemble(settings)
        self.running[ctx] = await start_service(ctx, settings, assembly, self.address(ctx))
        return self.running[ctx]

    async def stop_service(self, ctx: str) -> None:
        running = self.running.pop(ctx)
        await running.stop(grace=0.5)

    def servicer(self, ctx: str, index: int = 0):
        return self.running[ctx].assembly.registrations[index][1]

    @property
    def campaigns(self):
        return campaigns_pb2_grpc.CampaignsServiceStub(self.channels["campaigns"])

    @property
    def payments(self):
        return payments_pb2_grpc.PaymentsServiceStub(self.channels["payments"])

    @property
    def moderation(self):
        return moderation_pb2_grpc.ModerationServiceStub(self.channels["moderation"])

    def ops(self) -> dict:
        return {ctx: ops_pb2_grpc.OpsServiceStub(self.channels[ctx]) for ctx in ("campaigns", "moderation")}

    def world(self) -> World:
        owners = Owners(self.campaigns, self.servicer("campaigns"), harness.sandbox())
        return World(self.campaigns, self.payments, self.moderation, owners)

    def service_process(self, ctx: str) -> subprocess.Popen:
        """The service as its own OS process (for kill -9 tests)."""
        settings = {**FAST_OUTBOX, "database_url": self.pg_server, "adtech_internal_token": harness.INTERNAL_TOKEN,
                    "adtech_data_dir": str(self.data_dir), "campaigns_addr": self.address("campaigns"),
                    "payments_addr": self.address("payments"), "moderation_addr": self.address("moderation"),
                    f"{ctx}_database": self.databases[ctx], f"{ctx}_port": self.ports[ctx], "log_level": "WARNING"}
        env = {**os.environ, **{k.upper(): str(v) for k, v in settings.items()}}
        return subprocess.Popen([sys.executable, "-m", f"services.{ctx}.main"], env=env)

    async def close(self) -> None:
        for ctx in reversed(CONTEXTS):
            if ctx in self.running:
                await self.stop_service(ctx)
        for channel in self.channels.values():
            await channel.close()


async def wait_serving(address: str, timeout: float = 15.0) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    import grpc
    deadline = asyncio.get_running_loop().time() + timeout
    async with grpc.aio.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            try:
                reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{address} not serving within {timeout}s")
            await asyncio.sleep(0.1)
