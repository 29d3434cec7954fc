"""What the gateway answers by itself, over real HTTP: auth, roles, bad
input, unknown routes, and a service that is down. Every error has the
body of API.md and nothing a client sends gets a 500."""
import uuid

import pytest

from tests.integration.gateway.running import bearer, token

ANY_ID = str(uuid.uuid4())


def assert_error(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    assert body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code
    return body["error"]


async def test_live_needs_no_token(gateway_down):
    response = await gateway_down.get("/api/health/live")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


async def test_openapi_and_docs_are_served(gateway_down):
    spec = (await gateway_down.get("/api/openapi.json")).json()
    assert "/api/moderation/targets/{targetId}/approve" in spec["paths"]
    assert (await gateway_down.get("/api/docs")).status_code == 200


async def test_missing_token_is_401(gateway_down):
    assert_error(await gateway_down.get("/api/campaigns"), 401, "unauthenticated")


async def test_token_signed_with_another_secret_is_401(gateway_down):
    headers = {"Authorization": f"Bearer {token('admin', secret='another-secret-of-enough-length-000')}"}
    assert_error(await gateway_down.get("/api/wallet", headers=headers), 401, "unauthenticated")


async def test_expired_token_is_401(gateway_down):
    assert_error(await gateway_down.get("/api/wallet", headers=bearer("admin", ttl_s=-60)), 401)


async def test_wrong_role_is_403(gateway_down):
    response = await gateway_down.post("/api/campaigns", json={"name": "x"}, headers=bearer("publisher"))
    assert_error(response, 403, "forbidden")


async def test_moderation_is_for_admins_only(gateway_down):
    response = await gateway_down.post(f"/api/moderation/targets/{ANY_ID}/approve", headers=bearer("advertiser"))
    assert_error(response, 403, "forbidden")


async def test_unknown_route_is_404_with_our_body(gateway_down):
    assert_error(await gateway_down.get("/api/nothing-here"), 404, "not_found")


async def test_campaign_targets_controller_does_not_exist(gateway_down):
    response = await gateway_down.post(f"/api/campaign-targets/{ANY_ID}/submit", headers=bearer("advertiser"))
    assert_error(response, 404, "not_found")


async def test_wrong_method_is_405_with_our_body(gateway_down):
    assert_error(await gateway_down.delete("/api/health/live"), 405, "method_not_allowed")


async def test_bad_uuid_in_path_is_400(gateway_down):
    error = assert_error(await gateway_down.get("/api/campaigns/not-a-uuid", headers=bearer("advertiser")),
                         400, "invalid_input")
    assert "campaignId" in error["message"]


@pytest.mark.parametrize("limit", ["0", "201", "-1", "abc", "99999999999999999999999"])
async def test_limit_outside_1_to_200_is_400(gateway_down, limit):
    response = await gateway_down.get("/api/channels", params={"limit": limit}, headers=bearer("admin"))
    assert_error(response, 400, "invalid_input")


async def test_bad_json_is_400(gateway_down):
    response = await gateway_down.post("/api/campaigns", content=b"{not json",
                                       headers={**bearer("advertiser"), "content-type": "application/json"})
    assert_error(response, 400, "invalid_input")


@pytest.mark.parametrize("body", [
    {"title": "t", "handle": "@h", "pricePerPost": 10.5},
    {"title": "t", "handle": "@h", "pricePerPost": True},
    {"title": "t", "handle": "@h", "pricePerPost": "100"},
    {"title": "t", "handle": "@h", "pricePerPost": 0},
    {"title": "t", "handle": "@h", "pricePerPost": 10**12},
    {"title": "t", "handle": "@h", "pricePerPost": 10**40},
    {"title": "t", "handle": "@h"},
    {"title": 5, "handle": "@h", "pricePerPost": 100},
    {"title": "nul\u0000", "handle": "@h", "pricePerPost": 100},
    [1, 2, 3],
])
async def test_bad_channel_body_is_400(gateway_down, body):
    response = await gateway_down.post("/api/channels", json=body, headers=bearer("publisher"))
    assert_error(response, 400, "invalid_input")


async def test_huge_number_literal_is_400(gateway_down):
    response = await gateway_down.post(
        "/api/channels", content=b'{"title":"t","handle":"@h","pricePerPost":1e400}',
        headers={**bearer("publisher"), "content-type": "application/json"})
    assert_error(response, 400, "invalid_input")


@pytest.mark.parametrize("path, role, body", [
    ("/api/channels", "publisher", b'{"title":"t","handle":"@h","pricePerPost":1500.0}'),
    ("/api/channels", "publisher", b'{"title":"t","handle":"@h","pricePerPost":1e3}'),
    (f"/api/wallets/{ANY_ID}/deposits", "admin", b'{"amount":1000.0}'),
    (f"/api/wallets/{ANY_ID}/deposits", "admin", b'{"amount":1E3}'),
])
async def test_money_written_as_a_float_is_400_even_when_whole(gateway_down, path, role, body):
    response = await gateway_down.post(path, content=body, headers={
        **bearer(role), "content-type": "application/json", "Idempotency-Key": "k"})
    error = assert_error(response, 400, "invalid_input")
    assert "integer" in error["message"]


async def test_body_that_is_not_utf8_is_400(gateway_down):
    response = await gateway_down.post("/api/campaigns", content=b'{"name":"\xff"}',
                                       headers={**bearer("advertiser"), "content-type": "application/json"})
    assert_error(response, 400, "invalid_input")


async def test_lone_surrogate_in_text_is_400(gateway_down):
    response = await gateway_down.post(
        "/api/campaigns", content=b'{"name":"\\ud800"}',
        headers={**bearer("advertiser"), "content-type": "application/json"})
    assert_error(response, 400, "invalid_input")


@pytest.mark.parametrize("when", ["2030-01-01T12:00:00", "2030-01-01", "tomorrow", 1893456000,
                                  "0000-01-01T00:00:00Z", "2030-02-30T00:00:00Z"])
async def test_timestamp_without_zone_or_invalid_is_400(gateway_down, when):
    response = await gateway_down.post(f"/api/campaigns/{ANY_ID}/targets", headers=bearer("advertiser"),
                                       json={"channelId": ANY_ID, "scheduledAt": when})
    error = assert_error(response, 400, "invalid_input")
    assert "scheduledAt" in error["message"]


async def test_deposit_without_idempotency_key_is_400(gateway_down):
    response = await gateway_down.post(f"/api/wallets/{ANY_ID}/deposits", json={"amount": 100},
                                       headers=bearer("admin"))
    error = assert_error(response, 400, "invalid_input")
    assert "Idempotency-Key" in error["message"]


# The services are down here: each of these answers without calling one (a call would be 503).
@pytest.mark.parametrize("method, path, body, role", [
    ("PATCH", f"/api/channels/{ANY_ID}", {}, "publisher"),
    ("PATCH", f"/api/channels/{ANY_ID}", {"title": None, "pricePerPost": None, "autoAccept": None}, "publisher"),
    ("PATCH", f"/api/channels/{ANY_ID}", {"autoAccept": "yes"}, "publisher"),
    ("PATCH", "/api/channels/not-a-uuid", {"title": "News"}, "publisher"),
    ("POST", "/api/channels/not-a-uuid/resubmit", None, "publisher"),
    ("POST", "/api/channels", {"title": "t", "handle": "@abc", "pricePerPost": 100, "autoAccept": 1}, "publisher"),
    ("POST", f"/api/post-jobs/{ANY_ID}/decline", {}, "publisher"),
    ("POST", f"/api/post-jobs/{ANY_ID}/decline", {"reason": "   "}, "publisher"),
    ("POST", "/api/post-jobs/not-a-uuid/accept", None, "publisher"),
    ("GET", "/api/post-jobs", {"status": "awaiting"}, "admin"),
])
async def test_malformed_input_to_the_ownership_routes_is_400(gateway_down, method, path, body, role):
    kwargs = {"params": body} if method == "GET" else {"json": body}
    assert_error(await gateway_down.request(method, path, headers=bearer(role), **kwargs), 400, "invalid_input")


async def test_a_decline_that_is_not_json_is_400(gateway_down):
    response = await gateway_down.post(f"/api/post-jobs/{ANY_ID}/decline", content=b"{reason",
                                       headers={**bearer("publisher"), "content-type": "application/json"})
    assert assert_error(response, 400, "invalid_input")["message"] == "request body is not valid JSON"


@pytest.mark.parametrize("method, path, role", [
    ("PATCH", f"/api/channels/{ANY_ID}", "advertiser"),
    ("POST", f"/api/channels/{ANY_ID}/resubmit", "admin"),
    ("POST", f"/api/post-jobs/{ANY_ID}/accept", "advertiser"),
    ("POST", f"/api/post-jobs/{ANY_ID}/decline", "admin"),
])
async def test_only_publishers_change_channels_and_answer_orders(gateway_down, method, path, role):
    response = await gateway_down.request(method, path, json={"title": "News", "reason": "no"}, headers=bearer(role))
    assert_error(response, 403, "forbidden")


@pytest.mark.parametrize("method, path", [("GET", "/api/me"), ("POST", "/api/me/telegram/unlink"),
                                          ("POST", f"/api/post-jobs/{ANY_ID}/answer")])
async def test_routes_near_the_new_ones_do_not_exist(gateway_down, method, path):
    assert_error(await gateway_down.request(method, path, headers=bearer("publisher")), 404, "not_found")


async def test_service_down_is_503(gateway_down):
    assert_error(await gateway_down.get("/api/channels", headers=bearer("admin")), 503, "unavailable")


async def test_request_id_is_echoed(gateway_down):
    response = await gateway_down.get("/api/health/live", headers={"X-Request-ID": "abc-123"})
    assert response.headers["x-request-id"] == "abc-123"


async def test_request_id_is_generated_when_absent(gateway_down):
    response = await gateway_down.get("/api/nothing-here")
    assert len(response.headers["x-request-id"]) == 32


async def test_token_that_lasts_longer_than_a_day_is_401(gateway_down):
    assert_error(await gateway_down.get("/api/wallet", headers=bearer("admin", ttl_s=10**9)), 401, "unauthenticated")


async def test_token_naming_the_system_as_an_admin_is_401(gateway_down):
    headers = bearer("admin", sub="00000000-0000-0000-0000-000000000000")
    assert_error(await gateway_down.get("/api/wallet", headers=headers), 401, "unauthenticated")
