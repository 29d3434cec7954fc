"""The gateway's side of channel ownership and consent (API.md "Telegram
accounts", "Channel ownership and consent"), in process with a stand-in for
the campaigns stub: what each new route sends the service, how the answer
is translated (unset → null), what the edge refuses before any call, and
that each new machine reason reaches the client at the status the served
document lists it under. What campaigns decides (ownership through
Telegram, the answer's deadline) is tested against the real service."""
import types
import uuid

import grpc
import httpx
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from grpc.aio import AioRpcError, Metadata

from adtech.campaigns.v1 import campaigns_pb2 as pb
from common import errors
from common.grpc_errors import STATUS_OF_ERROR, rich_status_trailer
from common.reasons import Reason
from gateway import views
from gateway.app import create_app
from tests.integration.gateway.running import bearer, gateway_settings

# Fixed ids: they appear in test ids, which must not change between collections.
CHANNEL_ID, JOB_ID, OWNER = (str(uuid.uuid5(uuid.NAMESPACE_URL, name)) for name in ("channel", "post-job", "owner"))


def stamp(text: str) -> Timestamp:
    value = Timestamp()
    value.FromJsonString(text)
    return value


def a_channel(**fields) -> pb.Channel:
    base = dict(id=CHANNEL_ID, owner_id=OWNER, title="Daily news", handle="@daily_news", price_per_post=1500,
                currency="USD", status="pending", created_at=stamp("2030-01-01T00:00:00Z"))
    return pb.Channel(**{**base, **fields})


def a_job(**fields) -> pb.PostJob:
    base = dict(id=JOB_ID, execute_at=stamp("2030-01-02T12:00:00Z"), status="awaiting_publisher",
                accept_by=stamp("2030-01-02T11:55:00Z"))
    return pb.PostJob(**{**base, **fields})


class FakeCampaigns:
    """Answers each RPC with a canned reply (or raises the error set for
    it), and records every request."""

    def __init__(self):
        self.calls: list[tuple[str, object]] = []
        self.failures: dict[str, Exception] = {}
        self.replies = {
            "CreateChannel": pb.CreateChannelResponse(channel=a_channel()),
            "UpdateChannel": pb.UpdateChannelResponse(channel=a_channel()),
            "ResubmitChannel": pb.ResubmitChannelResponse(channel=a_channel()),
            "ListChannels": pb.ListChannelsResponse(channels=[a_channel(status="suspended")]),
            "ListPostJobs": pb.ListPostJobsResponse(),
            "AcceptPostJob": pb.AcceptPostJobResponse(post_job=a_job(status="queued")),
            "DeclinePostJob": pb.DeclinePostJobResponse(post_job=a_job(status="declined")),
            "CreateTelegramLink": pb.CreateTelegramLinkResponse(
                code="c0de_c0de_c0de_c0de", start_link="https://t.me/adtech_bot?start=c0de_c0de_c0de_c0de",
                expires_at=stamp("2030-01-01T00:10:00Z")),
            "GetTelegramAccount": pb.GetTelegramAccountResponse(linked=False),
            "UnlinkTelegramAccount": pb.UnlinkTelegramAccountResponse(),
        }

    def __getattr__(self, rpc: str):
        async def call(request, **kwargs):
            self.calls.append((rpc, request))
            if rpc in self.failures:
                raise self.failures[rpc]
            return self.replies[rpc]
        return call

    def only_call(self, rpc: str):
        assert [name for name, _ in self.calls] == [rpc]
        return self.calls[0][1]


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    return create_app(gateway_settings(tmp_path_factory.mktemp("gateway")))


@pytest.fixture
def campaigns() -> FakeCampaigns:
    return FakeCampaigns()


@pytest.fixture
async def client(app, campaigns):
    # No lifespan runs in process: the stand-in is the only service.
    app.state.services = types.SimpleNamespace(campaigns=campaigns)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as http:
        yield http


def refused(response: httpx.Response, status: int, code: str) -> str:
    assert (response.status_code, response.json()["error"]["code"]) == (status, code), response.text
    return response.json()["error"]["message"]


def rpc_error(error: errors.DomainError) -> AioRpcError:
    status = STATUS_OF_ERROR[type(error)]
    return AioRpcError(status, Metadata(), Metadata(*rich_status_trailer(error, status)), error.message)


# ---- Telegram accounts ------------------------------------------------------
@pytest.mark.parametrize("role", ["advertiser", "publisher", "admin"])
async def test_any_role_asks_for_a_link_and_gets_201_with_the_code(client, campaigns, role):
    response = await client.post("/api/me/telegram/link", headers=bearer(role))
    assert response.status_code == 201
    assert response.json() == {"code": "c0de_c0de_c0de_c0de",
                               "startLink": "https://t.me/adtech_bot?start=c0de_c0de_c0de_c0de",
                               "expiresAt": "2030-01-01T00:10:00Z"}
    assert campaigns.only_call("CreateTelegramLink") == pb.CreateTelegramLinkRequest()


async def test_no_account_bound_is_exactly_linked_false(client):
    response = await client.get("/api/me/telegram", headers=bearer("advertiser"))
    assert (response.status_code, response.json()) == (200, {"linked": False})


async def test_a_bound_account_is_shown_with_its_user_name_and_time(client, campaigns):
    campaigns.replies["GetTelegramAccount"] = pb.GetTelegramAccountResponse(
        linked=True, telegram_user_id=777000123, username="alice", linked_at=stamp("2030-01-01T00:05:00Z"))
    response = await client.get("/api/me/telegram", headers=bearer("publisher"))
    assert response.json() == {"linked": True, "telegramUserId": 777000123, "username": "alice",
                               "linkedAt": "2030-01-01T00:05:00Z"}


async def test_a_bound_account_without_a_username_shows_null(client, campaigns):
    campaigns.replies["GetTelegramAccount"] = pb.GetTelegramAccountResponse(
        linked=True, telegram_user_id=42, linked_at=stamp("2030-01-01T00:05:00Z"))
    assert (await client.get("/api/me/telegram", headers=bearer("publisher"))).json()["username"] is None


async def test_unlinking_is_204_without_a_body(client, campaigns):
    response = await client.delete("/api/me/telegram", headers=bearer("admin"))
    assert (response.status_code, response.content) == (204, b"")
    assert campaigns.only_call("UnlinkTelegramAccount") == pb.UnlinkTelegramAccountRequest()


@pytest.mark.parametrize("method, path", [("POST", "/api/me/telegram/link"), ("GET", "/api/me/telegram"),
                                          ("DELETE", "/api/me/telegram")])
async def test_telegram_routes_without_a_token_are_401_and_call_nothing(client, campaigns, method, path):
    refused(await client.request(method, path), 401, "unauthenticated")
    assert campaigns.calls == []


async def test_a_route_not_served_under_me_is_404_and_a_method_not_served_405(client):
    refused(await client.get("/api/me/telegram/link", headers=bearer("publisher")), 405, "method_not_allowed")
    refused(await client.get("/api/me/nothing", headers=bearer("publisher")), 404, "not_found")


# ---- channels -----------------------------------------------------------------
NEW_CHANNEL = {"title": "Daily news", "handle": "@daily_news", "pricePerPost": 1500}


async def test_a_new_channel_auto_accepts_only_when_asked(client, campaigns):
    await client.post("/api/channels", json=NEW_CHANNEL, headers=bearer("publisher"))
    await client.post("/api/channels", json={**NEW_CHANNEL, "autoAccept": True}, headers=bearer("publisher"))
    assert [request.auto_accept for _, request in campaigns.calls] == [False, True]


@pytest.mark.parametrize("flag", ["true", 1, 0, None, "yes"])
async def test_auto_accept_that_is_not_a_json_boolean_is_400_and_calls_nothing(client, campaigns, flag):
    response = await client.post("/api/channels", json={**NEW_CHANNEL, "autoAccept": flag},
                                 headers=bearer("publisher"))
    assert "autoAccept" in refused(response, 400, "invalid_input")
    assert campaigns.calls == []


async def test_a_channel_shows_what_telegram_proved_and_its_terms(client, campaigns):
    campaigns.replies["CreateChannel"] = pb.CreateChannelResponse(channel=a_channel(
        chat_id=-1001234567890, verified_at=stamp("2030-01-01T00:00:01Z"), auto_accept=True))
    channel = (await client.post("/api/channels", json=NEW_CHANNEL, headers=bearer("publisher"))).json()
    assert channel == {"id": CHANNEL_ID, "ownerId": OWNER, "title": "Daily news", "handle": "@daily_news",
                       "telegramChatId": -1001234567890, "pricePerPost": 1500, "currency": "USD",
                       "autoAccept": True, "status": "pending", "rejectionReason": None,
                       "verifiedAt": "2030-01-01T00:00:01Z", "createdAt": "2030-01-01T00:00:00Z"}


def test_a_listing_never_verified_shows_null_chat_and_time():
    channel = views.channel(a_channel(status="suspended", rejection_reason="listed before ownership was verified"))
    assert (channel.telegram_chat_id, channel.verified_at, channel.auto_accept, channel.rejection_reason) == \
        (None, None, False, "listed before ownership was verified")


async def test_suspended_channels_can_be_listed_by_status(client, campaigns):
    response = await client.get("/api/channels", params={"status": "suspended"}, headers=bearer("advertiser"))
    assert [c["status"] for c in response.json()["items"]] == ["suspended"]
    assert campaigns.only_call("ListChannels").status == "suspended"


async def test_a_channel_status_that_does_not_exist_is_400(client, campaigns):
    refused(await client.get("/api/channels", params={"status": "deleted"}, headers=bearer("admin")),
            400, "invalid_input")
    assert campaigns.calls == []


@pytest.mark.parametrize("body, sent", [
    ({"pricePerPost": 900}, {"price_per_post": 900}),
    ({"title": "Evening news", "pricePerPost": None}, {"title": "Evening news"}),
    ({"autoAccept": False}, {"auto_accept": False}),
    ({"title": "T", "pricePerPost": 1, "autoAccept": True}, {"title": "T", "price_per_post": 1, "auto_accept": True}),
])
async def test_patch_sends_exactly_the_fields_given(client, campaigns, body, sent):
    response = await client.patch(f"/api/channels/{CHANNEL_ID}", json=body, headers=bearer("publisher"))
    assert response.status_code == 200, response.text
    request = campaigns.only_call("UpdateChannel")
    assert request.channel_id == CHANNEL_ID
    assert {field.name: value for field, value in request.ListFields() if field.name != "channel_id"} == sent


@pytest.mark.parametrize("body", [{}, {"title": None, "pricePerPost": None, "autoAccept": None}, {"price": 900}])
async def test_a_patch_that_changes_nothing_is_400_saying_what_to_give(client, campaigns, body):
    message = refused(await client.patch(f"/api/channels/{CHANNEL_ID}", json=body, headers=bearer("publisher")),
                      400, "invalid_input")
    assert message == "give at least one of title, pricePerPost, autoAccept (not null)"
    assert campaigns.calls == []


@pytest.mark.parametrize("body", [
    {"title": " "}, {"title": "x" * 201}, {"pricePerPost": 0}, {"pricePerPost": 10**12}, {"pricePerPost": 9.5},
    {"pricePerPost": "900"}, {"autoAccept": "false"}, {"autoAccept": 1}, [1], "title",
])
async def test_a_patch_out_of_the_creation_limits_is_400(client, campaigns, body):
    refused(await client.patch(f"/api/channels/{CHANNEL_ID}", json=body, headers=bearer("publisher")),
            400, "invalid_input")
    assert campaigns.calls == []


async def test_a_patch_that_is_not_json_is_400(client, campaigns):
    response = await client.patch(f"/api/channels/{CHANNEL_ID}", content=b"{title",
                                  headers={**bearer("publisher"), "content-type": "application/json"})
    assert refused(response, 400, "invalid_input") == "request body is not valid JSON"
    assert campaigns.calls == []


@pytest.mark.parametrize("method, path, body", [
    ("PATCH", "/api/channels/not-a-uuid", {"title": "T"}),
    ("POST", "/api/channels/not-a-uuid/resubmit", None),
    ("POST", "/api/post-jobs/not-a-uuid/accept", None),
    ("POST", "/api/post-jobs/not-a-uuid/decline", {"reason": "no"}),
])
async def test_a_bad_id_is_400_naming_it(client, campaigns, method, path, body):
    response = await client.request(method, path, json=body, headers=bearer("publisher"))
    message = refused(response, 400, "invalid_input")
    assert ("channelId" if "channels" in path else "postJobId") in message
    assert campaigns.calls == []


@pytest.mark.parametrize("role", ["advertiser", "admin"])
@pytest.mark.parametrize("method, path, body", [
    ("PATCH", f"/api/channels/{CHANNEL_ID}", {"title": "T"}),
    ("POST", f"/api/channels/{CHANNEL_ID}/resubmit", None),
    ("POST", f"/api/post-jobs/{JOB_ID}/accept", None),
    ("POST", f"/api/post-jobs/{JOB_ID}/decline", {"reason": "no"}),
])
async def test_only_a_publisher_changes_a_channel_or_answers_an_order(client, campaigns, role, method, path, body):
    refused(await client.request(method, path, json=body, headers=bearer(role)), 403, "forbidden")
    assert campaigns.calls == []


async def test_resubmit_names_the_channel(client, campaigns):
    response = await client.post(f"/api/channels/{CHANNEL_ID}/resubmit", headers=bearer("publisher"))
    assert response.status_code == 200
    assert campaigns.only_call("ResubmitChannel") == pb.ResubmitChannelRequest(channel_id=CHANNEL_ID)


# ---- the owner's answer -------------------------------------------------------
async def test_accept_names_the_job_and_answers_the_post_job(client, campaigns):
    campaigns.replies["AcceptPostJob"] = pb.AcceptPostJobResponse(post_job=a_job(
        status="queued", answered_at=stamp("2030-01-01T08:00:00Z")))
    response = await client.post(f"/api/post-jobs/{JOB_ID}/accept", headers=bearer("publisher"))
    assert response.json() == {"id": JOB_ID, "executeAt": "2030-01-02T12:00:00Z", "status": "queued",
                               "acceptBy": "2030-01-02T11:55:00Z", "answeredAt": "2030-01-01T08:00:00Z",
                               "declineReason": None, "messageUrl": None, "publishedAt": None, "verifiedAt": None,
                               "failureReason": None}
    assert campaigns.only_call("AcceptPostJob") == pb.AcceptPostJobRequest(post_job_id=JOB_ID)


async def test_decline_sends_the_reason_and_shows_it(client, campaigns):
    campaigns.replies["DeclinePostJob"] = pb.DeclinePostJobResponse(post_job=a_job(
        status="declined", answered_at=stamp("2030-01-01T08:00:00Z"), decline_reason="off-topic"))
    response = await client.post(f"/api/post-jobs/{JOB_ID}/decline", json={"reason": "off-topic"},
                                 headers=bearer("publisher"))
    assert (response.json()["status"], response.json()["declineReason"]) == ("declined", "off-topic")
    assert campaigns.only_call("DeclinePostJob") == pb.DeclinePostJobRequest(post_job_id=JOB_ID, reason="off-topic")


@pytest.mark.parametrize("body", [{}, {"reason": ""}, {"reason": " \n\t"}, {"reason": "x" * 1001},
                                  {"reason": "nul\u0000"}, {"reason": 5}, {"why": "no"}])
async def test_a_decline_without_a_reason_is_400_and_calls_nothing(client, campaigns, body):
    response = await client.post(f"/api/post-jobs/{JOB_ID}/decline", json=body, headers=bearer("publisher"))
    assert "reason" in refused(response, 400, "invalid_input")
    assert campaigns.calls == []


async def test_a_decline_reason_of_1000_characters_is_sent(client, campaigns):
    response = await client.post(f"/api/post-jobs/{JOB_ID}/decline", json={"reason": "x" * 1000},
                                 headers=bearer("publisher"))
    assert response.status_code == 200 and len(campaigns.only_call("DeclinePostJob").reason) == 1000


def test_a_job_of_a_channel_that_auto_accepts_shows_no_deadline_nor_answer():
    job = views.post_job(pb.PostJob(id=JOB_ID, execute_at=stamp("2030-01-02T12:00:00Z"), status="queued"))
    assert (job.accept_by, job.answered_at, job.decline_reason) == (None, None, None)


@pytest.mark.parametrize("status", ["awaiting_publisher", "declined", "expired"])
async def test_the_new_job_statuses_filter_both_lists(client, campaigns, status):
    for path, role in ((f"/api/channels/{CHANNEL_ID}/posts", "publisher"), ("/api/post-jobs", "admin")):
        response = await client.get(path, params={"status": status}, headers=bearer(role))
        assert response.status_code == 200, response.text
    assert [request.status for _, request in campaigns.calls] == [status, status]


async def test_a_target_shows_its_job_awaiting_the_owner(client, campaigns):
    target = pb.Target(id=str(uuid.uuid4()), campaign_id=str(uuid.uuid4()), channel_id=CHANNEL_ID,
                       scheduled_at=stamp("2030-01-02T12:00:00Z"), price=1500, currency="USD", status="approved",
                       post_job=a_job())
    assert views.target(target).post_job.accept_by == "2030-01-02T11:55:00Z"


# ---- the new reasons, as answered and as documented --------------------------
@pytest.mark.parametrize("rpc, method, path, body, error, status", [
    ("CreateChannel", "POST", "/api/channels", NEW_CHANNEL,
     errors.PreconditionFailed("bind a Telegram account first", code=Reason.TELEGRAM_NOT_LINKED), 400),
    ("CreateChannel", "POST", "/api/channels", NEW_CHANNEL,
     errors.PreconditionFailed("no such chat", code=Reason.CHANNEL_NOT_FOUND), 400),
    ("CreateChannel", "POST", "/api/channels", NEW_CHANNEL,
     errors.Forbidden("not an administrator", code=Reason.NOT_CHANNEL_ADMIN), 403),
    ("CreateChannel", "POST", "/api/channels", NEW_CHANNEL,
     errors.AlreadyExists("listed already", code=Reason.CHANNEL_ALREADY_LISTED), 409),
    ("ResubmitChannel", "POST", f"/api/channels/{CHANNEL_ID}/resubmit", None,
     errors.PreconditionFailed("bind a Telegram account first", code=Reason.TELEGRAM_NOT_LINKED), 400),
    ("ResubmitChannel", "POST", f"/api/channels/{CHANNEL_ID}/resubmit", None,
     errors.Forbidden("not an administrator", code=Reason.NOT_CHANNEL_ADMIN), 403),
    ("ResubmitChannel", "POST", f"/api/channels/{CHANNEL_ID}/resubmit", None,
     errors.AlreadyExists("listed already", code=Reason.CHANNEL_ALREADY_LISTED), 409),
    ("UpdateChannel", "PATCH", f"/api/channels/{CHANNEL_ID}", {"title": "T"},
     errors.Forbidden("Not channel owner"), 403),
    ("AcceptPostJob", "POST", f"/api/post-jobs/{JOB_ID}/accept", None,
     errors.Conflict("not awaiting", code=Reason.POST_JOB_NOT_AWAITING), 409),
    ("AcceptPostJob", "POST", f"/api/post-jobs/{JOB_ID}/accept", None,
     errors.Conflict("too late", code=Reason.ANSWER_DEADLINE_PASSED), 409),
    ("DeclinePostJob", "POST", f"/api/post-jobs/{JOB_ID}/decline", {"reason": "no"},
     errors.Conflict("not awaiting", code=Reason.POST_JOB_NOT_AWAITING), 409),
    ("DeclinePostJob", "POST", f"/api/post-jobs/{JOB_ID}/decline", {"reason": "no"},
     errors.Forbidden("Not channel owner"), 403),
])
async def test_each_refusal_is_answered_at_the_status_the_document_lists_it(
        app, client, campaigns, rpc, method, path, body, error, status):
    campaigns.failures[rpc] = rpc_error(error)
    response = await client.request(method, path, json=body, headers=bearer("publisher"))
    assert response.json() == {"error": {"code": error.code, "message": error.message}}
    assert response.status_code == status
    documented = app.openapi()["paths"][path.replace(CHANNEL_ID, "{channelId}").replace(JOB_ID, "{postJobId}")]
    assert f"`{error.code}`" in documented[method.lower()]["responses"][str(status)]["description"]


async def test_the_service_down_is_503_for_every_new_route(client, campaigns):
    down = AioRpcError(grpc.StatusCode.UNAVAILABLE, Metadata(), Metadata(), "connect failed")
    for rpc in ("CreateTelegramLink", "GetTelegramAccount", "UnlinkTelegramAccount", "UpdateChannel",
                "ResubmitChannel", "AcceptPostJob", "DeclinePostJob"):
        campaigns.failures[rpc] = down
    for method, path, body in [("POST", "/api/me/telegram/link", None), ("GET", "/api/me/telegram", None),
                               ("DELETE", "/api/me/telegram", None),
                               ("PATCH", f"/api/channels/{CHANNEL_ID}", {"autoAccept": True}),
                               ("POST", f"/api/channels/{CHANNEL_ID}/resubmit", None),
                               ("POST", f"/api/post-jobs/{JOB_ID}/accept", None),
                               ("POST", f"/api/post-jobs/{JOB_ID}/decline", {"reason": "no"})]:
        refused(await client.request(method, path, json=body, headers=bearer("publisher")), 503, "unavailable")
