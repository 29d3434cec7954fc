"""Cross-origin access over real HTTP: a page on an allowed origin gets its
preflight answered and may read the answers; any other origin gets no CORS
header at all; by default no origin is allowed; never a wildcard, never
credentials."""
import httpx
import pytest

from gateway.settings import Settings
from tests.integration.gateway.running import bearer, closed_address, gateway_settings, serving

APP = "https://app.example"
OTHER = "https://evil.example"


@pytest.fixture(scope="module")
async def with_cors(data_dir):
    settings = gateway_settings(data_dir, campaigns_addr=closed_address(), moderation_addr=closed_address(),
                                payments_addr=closed_address(), grpc_deadline_ms=1000,
                                gateway_cors_origins=f"{APP}, http://localhost:5173")
    async with serving(settings) as url:
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            yield client


def preflight(origin: str, method: str = "POST", headers: str = "authorization, content-type, idempotency-key"):
    return {"Origin": origin, "Access-Control-Request-Method": method, "Access-Control-Request-Headers": headers}


async def test_a_preflight_from_an_allowed_origin_is_answered(with_cors):
    response = await with_cors.options("/api/wallets/x/deposits", headers=preflight(APP))
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == APP
    allowed = {name.strip().lower() for name in response.headers["access-control-allow-headers"].split(",")}
    assert {"authorization", "content-type", "idempotency-key"} <= allowed
    assert "POST" in response.headers["access-control-allow-methods"]
    assert "access-control-allow-credentials" not in response.headers


async def test_an_answer_to_an_allowed_origin_names_that_origin_and_varies_by_it(with_cors):
    response = await with_cors.get("/api/campaigns", headers={"Origin": APP})
    assert response.status_code == 401
    assert response.headers["access-control-allow-origin"] == APP
    assert "Origin" in response.headers["vary"]
    assert "X-Request-ID" in response.headers["access-control-expose-headers"]


async def test_the_second_allowed_origin_is_named_as_itself(with_cors):
    response = await with_cors.get("/api/health/live", headers={"Origin": "http://localhost:5173"})
    assert response.headers["access-control-allow-origin"] == "http://localhost:5173"


async def test_another_origin_gets_no_cors_header_and_no_preflight(with_cors):
    answer = await with_cors.get("/api/wallet", headers={"Origin": OTHER, **bearer("advertiser")})
    assert not [name for name in answer.headers if name.startswith("access-control-")]
    refused = await with_cors.options("/api/campaigns", headers=preflight(OTHER))
    assert refused.status_code == 405
    assert not [name for name in refused.headers if name.startswith("access-control-")]


async def test_an_origin_that_only_starts_like_an_allowed_one_is_another(with_cors):
    response = await with_cors.get("/api/health/live", headers={"Origin": APP + ".evil.example"})
    assert "access-control-allow-origin" not in response.headers


async def test_a_refused_body_still_tells_an_allowed_page_why(with_cors):
    response = await with_cors.post("/api/campaigns", content=b"x" * (2 * 1024 * 1024),
                                    headers={"Origin": APP, "Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.headers["access-control-allow-origin"] == APP


async def test_by_default_no_origin_gets_cors(gateway_down):
    answer = await gateway_down.get("/api/health/live", headers={"Origin": APP})
    preflight_answer = await gateway_down.options("/api/campaigns", headers=preflight(APP))
    for response in (answer, preflight_answer):
        assert not [name for name in response.headers if name.startswith("access-control-")]


@pytest.mark.parametrize("origins", ["*", "https://*.example", "https://app.example/", "https://app.example/path",
                                     "app.example", "ftp://app.example"])
def test_a_wildcard_or_anything_but_an_origin_is_refused_as_a_setting(data_dir, origins):
    with pytest.raises(ValueError, match="not an origin"):
        Settings(gateway_cors_origins=origins, adtech_data_dir=data_dir)
