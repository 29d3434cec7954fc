"""The last resort: an unexpected failure inside the gateway is logged once
and answered 500 with our body and no details."""
import logging

import httpx

from gateway.app import create_app
from tests.integration.gateway.running import closed_address, gateway_settings, serving


async def test_unexpected_error_is_500_without_details(data_dir, caplog):
    settings = gateway_settings(data_dir, campaigns_addr=closed_address(), moderation_addr=closed_address(),
                                payments_addr=closed_address())
    app = create_app(settings)

    @app.get("/api/boom")
    async def boom():
        raise RuntimeError("secret detail 42")

    with caplog.at_level(logging.ERROR, logger="gateway.access"):
        async with serving(settings, app) as url, httpx.AsyncClient(base_url=url) as client:
            response = await client.get("/api/boom")
    assert response.status_code == 500
    assert response.json() == {"error": {"code": "internal", "message": "internal error"}}
    assert response.headers["x-request-id"]
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == ["unexpected error"]
