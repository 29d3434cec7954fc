import httpx
import pytest

from tests.integration.gateway.running import closed_address, gateway_settings, serving


@pytest.fixture(scope="module")
async def gateway_down(data_dir):
    """The gateway with every service address pointing at a closed port:
    enough for everything the gateway refuses by itself."""
    settings = gateway_settings(data_dir, campaigns_addr=closed_address(), moderation_addr=closed_address(),
                                payments_addr=closed_address(), grpc_deadline_ms=1000)
    async with serving(settings) as url:
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            yield client
