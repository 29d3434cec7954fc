"""Headers every answer carries, over real HTTP: nosniff on every answer
(success, refusal, unknown route, the console), and redirects that stay on
the gateway whatever Host the request names."""
import pytest

from tests.integration.gateway.running import bearer


@pytest.mark.parametrize("path", ["/api/health/live", "/api/campaigns", "/api/no-such-route", "/api/openapi.json",
                                  "/console", "/console/assets/no-such-file.js"])
async def test_every_answer_carries_nosniff_once(gateway_down, path):
    response = await gateway_down.get(path)
    assert response.headers.get_list("x-content-type-options") == ["nosniff"], (response.status_code, path)


async def test_a_refusal_of_a_service_down_carries_nosniff(gateway_down):
    response = await gateway_down.get("/api/wallet", headers=bearer("advertiser"))
    assert response.status_code == 503
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_a_trailing_slash_redirect_is_relative_whatever_the_host(gateway_down):
    response = await gateway_down.get("/console/", headers={"Host": "evil.example"})
    assert response.status_code in (301, 307, 308)
    assert response.headers["location"] == "/console"


async def test_a_redirect_keeps_its_query_and_never_names_a_host(gateway_down):
    response = await gateway_down.get("/api/campaigns/?limit=5", headers={"Host": "evil.example"})
    assert response.status_code in (301, 307, 308)
    assert response.headers["location"] == "/api/campaigns?limit=5"
