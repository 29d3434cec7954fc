"""The served OpenAPI document says what the gateway answers (the live
answers are held to it in tests/e2e/test_openapi_conformance.py), and the
docs page works without internet: every file it loads comes from the
gateway itself."""
import re
import uuid
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import pytest

from tests.integration.gateway.running import bearer

ERROR_BODY = {"$ref": "#/components/schemas/ErrorBody"}
# What the gateway's limits can answer on every operation (API.md "Gateway limits").
LIMITS = {"413", "431"}


@pytest.fixture(scope="module")
async def document(gateway_down) -> dict:
    return (await gateway_down.get("/api/openapi.json")).json()


def operations(document: dict):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield f"{method.upper()} {path}", operation


def test_no_operation_documents_422(document):
    assert [name for name, operation in operations(document) if "422" in operation["responses"]] == []
    assert not {"HTTPValidationError", "ValidationError"} & set(document["components"]["schemas"])


def test_every_error_response_is_the_one_error_body(document):
    for name, operation in operations(document):
        for status, response in operation["responses"].items():
            if int(status) >= 400 and name != "GET /api/health/ready":
                assert response["content"]["application/json"]["schema"] == ERROR_BODY, (name, status)
    body = document["components"]["schemas"]["ErrorBody"]
    detail = document["components"]["schemas"]["ErrorDetail"]
    assert (body["required"], body["additionalProperties"]) == (["error"], False)
    assert (sorted(detail["required"]), detail["additionalProperties"]) == (["code", "message"], False)


def test_every_route_with_a_token_documents_401_and_the_bearer_scheme(document):
    assert document["components"]["securitySchemes"]["bearer"] == {
        "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
        "description": document["components"]["securitySchemes"]["bearer"]["description"]}
    for name, operation in operations(document):
        if name == "GET /api/health/live":
            assert "security" not in operation and set(operation["responses"]) == {"200"} | LIMITS
            continue
        assert {"bearer": []} in operation["security"], name
        assert "401" in operation["responses"], name


def test_readiness_takes_a_token_only_for_details(document):
    assert document["paths"]["/api/health/ready"]["get"]["security"] == [{"bearer": []}, {}]


@pytest.mark.parametrize("name, statuses", [
    ("POST /api/moderation/targets/{targetId}/approve", {"200", "202", "400", "401", "402", "403", "404", "409", "503"}),
    ("POST /api/wallets/{userId}/deposits", {"200", "201", "400", "401", "403", "404", "409", "503"}),
    ("POST /api/campaigns/{campaignId}/complete", {"200", "400", "401", "403", "404", "409", "503"}),
    ("GET /api/wallet", {"200", "401", "503"}),
    ("POST /api/wallet/withdrawals", {"200", "201", "400", "401", "402", "403", "409", "503"}),
    ("GET /api/wallet/withdrawals", {"200", "400", "401", "503"}),
    ("GET /api/withdrawals", {"200", "400", "401", "403", "503"}),
    ("POST /api/withdrawals/{withdrawalId}/complete", {"200", "400", "401", "403", "404", "409", "503"}),
    ("POST /api/withdrawals/{withdrawalId}/reject", {"200", "400", "401", "403", "404", "409", "503"}),
    ("GET /api/channels/{channelId}/posts", {"200", "400", "401", "403", "404", "503"}),
    ("GET /api/post-jobs", {"200", "400", "401", "403", "503"}),
    ("POST /api/post-jobs/{postJobId}/resolve", {"200", "400", "401", "403", "404", "409", "503"}),
    ("POST /api/me/telegram/link", {"201", "400", "401", "503"}),  # 400: a body nested too deep
    ("GET /api/me/telegram", {"200", "401", "503"}),
    ("DELETE /api/me/telegram", {"204", "400", "401", "503"}),
    ("POST /api/channels", {"201", "400", "401", "403", "409", "503"}),
    ("PATCH /api/channels/{channelId}", {"200", "400", "401", "403", "404", "503"}),
    ("POST /api/channels/{channelId}/approve", {"200", "400", "401", "403", "404", "503"}),
    ("POST /api/channels/{channelId}/resubmit", {"200", "400", "401", "403", "404", "409", "503"}),
    ("POST /api/post-jobs/{postJobId}/accept", {"200", "400", "401", "403", "404", "409", "503"}),
    ("POST /api/post-jobs/{postJobId}/decline", {"200", "400", "401", "403", "404", "409", "503"}),
])
def test_each_operation_lists_every_status_it_can_answer(document, name, statuses):
    assert set(dict(operations(document))[name]["responses"]) == statuses | LIMITS


def test_every_operation_documents_the_limits_and_each_with_a_body_the_depth(document):
    for name, operation in operations(document):
        responses = operation["responses"]
        assert "`payload_too_large`" in responses["413"]["description"], name
        assert "`headers_too_large`" in responses["431"]["description"], name
        if not name.startswith("GET "):
            assert "deeper than 32" in responses["400"]["description"], name


@pytest.mark.parametrize("name, status, code", [
    ("POST /api/wallets/{userId}/deposits", "404", "wallet_not_found"),
    ("POST /api/wallets/{userId}/deposits", "409", "idempotency_key_reused"),
    ("POST /api/campaigns/{campaignId}/targets", "400", "slot_taken"),
    ("POST /api/campaigns/{campaignId}/targets", "400", "beyond_booking_horizon"),
    ("POST /api/campaigns/{campaignId}/targets/{targetId}/submit", "400", "invalid_time"),
    ("POST /api/campaigns/{campaignId}/targets/{targetId}/submit", "400", "scheduled_too_soon"),
    ("POST /api/moderation/targets/{targetId}/approve", "400", "target_cancelled"),
    ("POST /api/moderation/targets/{targetId}/approve", "402", "insufficient_funds"),
    ("POST /api/campaigns/{campaignId}/complete", "409", "campaign_has_open_targets"),
    ("POST /api/wallet/withdrawals", "402", "insufficient_funds"),
    ("POST /api/wallet/withdrawals", "409", "idempotency_key_reused"),
    ("POST /api/withdrawals/{withdrawalId}/complete", "409", "withdrawal_not_pending"),
    ("POST /api/withdrawals/{withdrawalId}/reject", "404", "withdrawal_not_found"),
    ("POST /api/channels", "400", "telegram_not_linked"),
    ("POST /api/channels", "400", "channel_not_found"),
    ("POST /api/channels", "400", "channel_cannot_post"),
    ("POST /api/channels", "403", "not_channel_admin"),
    ("POST /api/channels", "409", "channel_already_listed"),
    ("PATCH /api/channels/{channelId}", "403", "forbidden"),
    ("PATCH /api/channels/{channelId}", "404", "not_found"),
    ("POST /api/channels/{channelId}/resubmit", "400", "invalid_transition"),
    ("POST /api/channels/{channelId}/resubmit", "400", "telegram_not_linked"),
    ("POST /api/channels/{channelId}/resubmit", "400", "channel_cannot_post"),
    ("POST /api/channels/{channelId}/resubmit", "403", "not_channel_admin"),
    ("POST /api/channels/{channelId}/resubmit", "409", "channel_already_listed"),
    ("POST /api/channels/{channelId}/approve", "400", "telegram_not_linked"),
    ("POST /api/channels/{channelId}/approve", "403", "not_channel_admin"),
    ("POST /api/post-jobs/{postJobId}/accept", "403", "forbidden"),
    ("POST /api/post-jobs/{postJobId}/accept", "409", "post_job_not_awaiting"),
    ("POST /api/post-jobs/{postJobId}/accept", "409", "answer_deadline_passed"),
    ("POST /api/post-jobs/{postJobId}/decline", "409", "post_job_not_awaiting"),
    ("POST /api/post-jobs/{postJobId}/decline", "409", "answer_deadline_passed"),
])
def test_each_status_names_its_codes(document, name, status, code):
    assert f"`{code}`" in dict(operations(document))[name]["responses"][status]["description"]


def test_the_documented_limits_are_the_services(document):
    schemas = document["components"]["schemas"]

    def limit(model: str, field: str) -> int:
        schema = schemas[model]["properties"][field]
        return next(s for s in schema.get("anyOf", [schema]) if s.get("type") == "string")["maxLength"]

    assert (limit("NewCampaign", "name"), limit("NewChannel", "title"), limit("Rejection", "reason")) == (200, 200, 1000)
    assert (limit("ChannelChanges", "title"), limit("Declination", "reason")) == (200, 1000)
    assert (limit("NewCreative", "text"), limit("NewCreative", "mediaUrl"), limit("NewDeposit", "reference")) == \
        (4096, 2048, 500)
    assert schemas["NewChannel"]["properties"]["pricePerPost"]["maximum"] == 10**12 - 1
    assert schemas["ChannelChanges"]["properties"]["pricePerPost"]["anyOf"][0]["maximum"] == 10**12 - 1
    assert schemas["NewCampaign"]["properties"]["creatives"]["maxItems"] == 50
    assert "100000" not in str(document)


def test_parameters_are_camel_case_and_deposits_need_an_idempotency_key(document):
    names = {parameter["name"] for _, operation in operations(document) for parameter in operation.get("parameters", [])}
    assert names == {"channelId", "campaignId", "targetId", "userId", "withdrawalId", "postJobId", "limit", "cursor", "status",
                     "details", "Idempotency-Key", "service", "messageId"}
    for path in ("/api/wallets/{userId}/deposits", "/api/wallet/withdrawals"):
        key = next(p for p in document["paths"][path]["post"]["parameters"] if p["name"] == "Idempotency-Key")
        assert (key["in"], key["required"], key["schema"]["maxLength"]) == ("header", True, 200)


def test_a_channel_change_must_name_a_field_to_change(document):
    """A client's validator refuses what the gateway refuses: `{}` or only nulls."""
    schema = document["components"]["schemas"]["ChannelChanges"]
    assert schema["anyOf"] == [{"required": [name], "properties": {name: {"not": {"type": "null"}}}}
                               for name in ("title", "pricePerPost", "autoAccept")]


def test_auto_accept_is_a_json_boolean_false_by_default(document):
    new_channel = document["components"]["schemas"]["NewChannel"]
    assert new_channel["properties"]["autoAccept"] == {"type": "boolean", "title": "Autoaccept", "default": False}
    assert "autoAccept" not in new_channel["required"]


def test_the_telegram_account_is_either_bound_or_exactly_not_linked(document):
    schemas = document["components"]["schemas"]
    answer = document["paths"]["/api/me/telegram"]["get"]["responses"]["200"]["content"]["application/json"]
    assert answer["schema"]["anyOf"] == [{"$ref": "#/components/schemas/LinkedTelegramAccount"},
                                         {"$ref": "#/components/schemas/UnlinkedTelegramAccount"}]
    assert schemas["UnlinkedTelegramAccount"]["properties"] == {"linked": {"type": "boolean", "const": False,
                                                                           "title": "Linked"}}
    assert schemas["UnlinkedTelegramAccount"]["additionalProperties"] is False
    assert set(schemas["LinkedTelegramAccount"]["required"]) == {"linked", "telegramUserId", "username", "linkedAt"}
    assert schemas["TelegramLink"]["required"] == ["code", "startLink", "expiresAt"]


def test_unlinking_answers_204_without_a_body(document):
    assert document["paths"]["/api/me/telegram"]["delete"]["responses"]["204"] == {
        "description": "Successful Response"}


def test_the_new_fields_are_in_the_channel_and_post_job(document):
    schemas = document["components"]["schemas"]
    assert list(schemas["Channel"]["properties"]) == [
        "id", "ownerId", "title", "handle", "telegramChatId", "pricePerPost", "currency", "autoAccept", "status",
        "rejectionReason", "verifiedAt", "createdAt"]
    assert list(schemas["PostJob"]["properties"]) == [
        "id", "executeAt", "status", "acceptBy", "answeredAt", "declineReason", "messageUrl", "publishedAt",
        "verifiedAt", "failureReason"]
    assert set(schemas["Channel"]["required"]) == set(schemas["Channel"]["properties"])
    assert set(schemas["PostJob"]["required"]) == set(schemas["PostJob"]["properties"])


def _status_filter(document: dict, path: str) -> list[str]:
    parameter = next(p for p in document["paths"][path]["get"]["parameters"] if p["name"] == "status")
    return parameter["schema"]["enum"]


def test_status_filters_take_the_new_statuses(document):
    assert _status_filter(document, "/api/channels") == ["", "pending", "approved", "rejected", "suspended"]
    for path in ("/api/post-jobs", "/api/channels/{channelId}/posts"):
        assert _status_filter(document, path) == [
            "", "awaiting_publisher", "queued", "publishing", "published", "verified", "cancelled", "failed",
            "needs_review", "declined", "expired"]


@pytest.mark.parametrize("content, headers", [
    (b'{"title": "t", "handle": "@abc", "pricePerPost": 100}', {}),
    (b'{"title": "t", "handle": "@abc", "pricePerPost": 100}', {"content-type": "text/plain"}),
    (b"title=t&handle=%40abc", {"content-type": "application/x-www-form-urlencoded"}),
    (b"[1, 2, 3]", {"content-type": "application/json"}),
    (b"", {"content-type": "application/json"}),
])
async def test_a_body_that_is_not_a_json_object_is_400_saying_so(gateway_down, content, headers):
    response = await gateway_down.post("/api/channels", content=content, headers={**bearer("publisher"), **headers})
    assert response.status_code == 400
    assert response.json() == {"error": {"code": "invalid_input", "message":
                                         "request body must be a JSON object, sent with Content-Type: application/json"}}


async def test_a_text_out_of_its_pattern_is_400_saying_what_it_must_be(gateway_down):
    response = await gateway_down.post("/api/channels", headers=bearer("publisher"),
                                       json={"title": " ", "handle": "news", "pricePerPost": 100})
    assert response.status_code == 400
    assert response.json()["error"]["message"] == ("title: must not be blank nor contain NUL characters; "
                                                   "handle: must look like @name (3-64 letters, digits or _)")


async def test_a_method_not_served_is_405_allowing_every_method_of_the_path(gateway_down):
    response = await gateway_down.delete("/api/campaigns", headers=bearer("advertiser"))
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.urls += [value for name, value in attrs if name in ("src", "href") and value]


async def test_docs_load_every_file_from_the_gateway_itself(gateway_down):
    page = await gateway_down.get("/api/docs")
    assert page.status_code == 200
    links = _Links()
    links.feed(page.text)
    script_urls = re.findall(r"""url:\s*['"]([^'"]+)['"]""", page.text)
    assert script_urls == ["/api/openapi.json"]
    assert len(links.urls) == 3  # the stylesheet, the icon, the script
    for url in links.urls + script_urls:
        assert not urlsplit(url).netloc and not url.startswith("//"), url
        asset = await gateway_down.get(urljoin("/api/docs", url))
        assert asset.status_code == 200, url
        assert not re.findall(rb"""url\(\s*['"]?(?:https?:)?//""", asset.content), url
    assert '"validatorUrl": null' in page.text


async def test_a_missing_docs_asset_is_404_with_our_body(gateway_down):
    response = await gateway_down.get(f"/api/docs/assets/{uuid.uuid4().hex}.js")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
