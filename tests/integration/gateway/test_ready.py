"""Readiness asks each service's standard gRPC health and names the one
that is not serving. The services here are real gRPC servers with only the
health service registered (what readiness talks to)."""
import httpx
from grpc_health.v1 import health_pb2

from common.grpc_server import ServiceServer
from tests import harness
from tests.integration.gateway.running import closed_address, gateway_settings, serving

SERVICES = ("campaigns", "moderation", "payments")


async def _health_servers():
    servers = {name: ServiceServer(harness.INTERNAL_TOKEN, []) for name in SERVICES}
    ports = {name: await server.start("127.0.0.1:0") for name, server in servers.items()}
    return servers, ports


async def _ready(data_dir, addresses) -> httpx.Response:
    settings = gateway_settings(data_dir, **{f"{name}_addr": address for name, address in addresses.items()})
    async with serving(settings) as url, httpx.AsyncClient(base_url=url) as client:
        return await client.get("/api/health/ready")


async def test_ready_when_every_service_serves(data_dir):
    servers, ports = await _health_servers()
    try:
        response = await _ready(data_dir, {name: f"127.0.0.1:{port}" for name, port in ports.items()})
    finally:
        for server in servers.values():
            await server.stop(0)
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "services": {name: "SERVING" for name in SERVICES}}


async def test_not_ready_names_the_service_that_is_down(data_dir):
    servers, ports = await _health_servers()
    addresses = {name: f"127.0.0.1:{port}" for name, port in ports.items()}
    addresses["payments"] = closed_address()
    try:
        response = await _ready(data_dir, addresses)
    finally:
        for server in servers.values():
            await server.stop(0)
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "services": {
        "campaigns": "SERVING", "moderation": "SERVING", "payments": "UNREACHABLE"}}


async def test_not_ready_names_a_service_that_says_not_serving(data_dir):
    servers, ports = await _health_servers()
    await servers["moderation"].health.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    try:
        response = await _ready(data_dir, {name: f"127.0.0.1:{port}" for name, port in ports.items()})
    finally:
        for server in servers.values():
            await server.stop(0)
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "services": {
        "campaigns": "SERVING", "moderation": "NOT_SERVING", "payments": "SERVING"}}


async def test_ready_needs_no_token(gateway_down):
    response = await gateway_down.get("/api/health/ready")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "services": {name: "UNREACHABLE" for name in SERVICES}}
