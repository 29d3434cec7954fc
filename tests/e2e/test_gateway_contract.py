"""The HTTP contract of API.md, end to end: the real services (each with
its own fresh database) and the real gateway on free ports, driven over
HTTP with tokens minted like a user's. Checks the JSON shapes exactly."""
import dataclasses
import datetime as dt
import re
import uuid

import httpx
import pytest

from common.auth import Actor
from tests.integration.gateway.running import bearer, gateway_settings, serving
from tests.harness import eventually, free_slot
from tests.stack import Stack

TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")
CHANNEL = {"id", "ownerId", "title", "handle", "telegramChatId", "pricePerPost", "currency", "autoAccept", "status",
           "rejectionReason", "verifiedAt", "createdAt"}
CAMPAIGN = {"id", "advertiserId", "name", "status", "startAt", "endAt", "creatives", "createdAt", "updatedAt"}
CREATIVE = {"id", "text", "mediaUrl"}
TARGET = {"id", "campaignId", "channelId", "scheduledAt", "price", "currency", "status", "moderatedBy",
          "moderatedAt", "moderationReason", "postJob"}
POST_JOB = {"id", "executeAt", "status", "acceptBy", "answeredAt", "declineReason", "messageUrl", "publishedAt",
            "verifiedAt", "failureReason"}
TELEGRAM_LINK = {"code", "startLink", "expiresAt"}
LINK_CODE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
QUEUE_ITEM = TARGET | {"channel", "creatives", "campaignName", "advertiserId"}
DECISION = {"targetId", "decisionId", "decision", "status", "reason", "postJobId", "escrowId"}
APPROVED = {"ok", "targetId", "status", "postJobId", "escrowId", "alreadyApproved"}
WALLET = {"userId", "currency", "balance", "held", "pendingPayout"}
LEDGER_ENTRY = {"id", "transactionId", "kind", "amount", "balanceAfter", "reference", "createdAt"}
ESCROW = {"id", "targetId", "advertiserId", "publisherId", "amount", "currency", "status", "createdAt", "updatedAt"}
PRICE = 1_500


@pytest.fixture(scope="module")
async def stack(pg_server, data_dir):
    running = await Stack(pg_server, data_dir).start()
    yield running
    await running.close()


def _gateway(stack: Stack, data_dir, **overrides):
    return serving(gateway_settings(data_dir, campaigns_addr=stack.address("campaigns"),
                                    moderation_addr=stack.address("moderation"),
                                    payments_addr=stack.address("payments"), **overrides))


@pytest.fixture(scope="module")
async def http(stack, data_dir):
    async with _gateway(stack, data_dir) as url, httpx.AsyncClient(base_url=url, timeout=15) as client:
        yield client


@pytest.fixture(scope="module")
async def http_no_wait(stack, data_dir):
    """A gateway whose approve does not wait for the saga."""
    async with _gateway(stack, data_dir, moderation_approve_wait_ms=0) as url, \
            httpx.AsyncClient(base_url=url, timeout=15) as client:
        yield client


@dataclasses.dataclass
class User:
    role: str
    id: str = dataclasses.field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def auth(self) -> dict[str, str]:
        return bearer(self.role, self.id)


class Api:
    """Calls as a user and checks the status, returning the JSON; `owners`
    makes a publisher's Telegram account (linked through the bot's handling
    of `/start <code>`) the creator of a chat before it is listed."""

    def __init__(self, http: httpx.AsyncClient, owners):
        self.http, self.owners = http, owners
        self.admin = User("admin")

    async def own(self, publisher: User, handle: str) -> None:
        await self.owners.own(Actor(publisher.id, publisher.role), handle)

    async def listed(self, publisher: User, status: int = 201, **fields) -> dict:
        """A chat `publisher` owns, listed with `fields` (a fresh handle unless given)."""
        fields.setdefault("handle", f"@ch_{uuid.uuid4().hex[:12]}")
        await self.own(publisher, fields["handle"])
        return await self.call(publisher, "POST", "/api/channels", status, json=fields)

    async def call(self, user: User, method: str, path: str, status: int, **kwargs):
        response = await self.http.request(method, path, headers={**user.auth, **kwargs.pop("headers", {})}, **kwargs)
        assert response.status_code == status, (method, path, response.status_code, response.text)
        return response.json()

    async def approved_channel(self, publisher: User | None = None) -> dict:
        publisher = publisher or User("publisher")
        channel = await self.listed(publisher, title="Daily news", pricePerPost=PRICE, autoAccept=True)
        return await self.call(self.admin, "POST", f"/api/channels/{channel['id']}/approve", 200)

    async def active_campaign(self, advertiser: User) -> dict:
        campaign = await self.call(advertiser, "POST", "/api/campaigns", 201, json={
            "name": "Winter sale", "creatives": [{"text": "Buy now"}]})
        return await self.call(advertiser, "POST", f"/api/campaigns/{campaign['id']}/activate", 200)

    async def submitted_target(self, advertiser: User, campaign: dict, channel: dict) -> dict:
        target = await self.call(advertiser, "POST", f"/api/campaigns/{campaign['id']}/targets", 201, json={
            "channelId": channel["id"], "scheduledAt": in_a_day()})
        return await self.call(advertiser, "POST", f"/api/campaigns/{campaign['id']}/targets/{target['id']}/submit", 200)

    async def deposit(self, user: User, amount: int, key: str | None = None, status: int = 201) -> dict:
        await self.call(user, "GET", "/api/wallet", 200)  # the owner's first look opens the wallet
        return await self.call(self.admin, "POST", f"/api/wallets/{user.id}/deposits", status,
                               json={"amount": amount, "reference": "top-up"},
                               headers={"Idempotency-Key": key or uuid.uuid4().hex})

    async def ready_to_approve(self, funds: int = 10_000):
        advertiser = User("advertiser")
        channel = await self.approved_channel()
        if funds:
            await self.deposit(advertiser, funds)
        campaign = await self.active_campaign(advertiser)
        return advertiser, campaign, await self.submitted_target(advertiser, campaign, channel)


@pytest.fixture(scope="module")
def owners(stack):
    return stack.world().owners


@pytest.fixture
def api(http, owners) -> Api:
    return Api(http, owners)


def in_a_day() -> str:
    return free_slot().isoformat()


def assert_timestamps(obj: dict, *fields: str) -> None:
    for field in fields:
        assert TIMESTAMP.match(obj[field]), (field, obj[field])


def assert_error(body: dict, code: str | None = None) -> None:
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    if code:
        assert body["error"]["code"] == code


async def test_ready_reports_every_service_serving(http):
    response = await http.get("/api/health/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "services": {
        "campaigns": "SERVING", "moderation": "SERVING", "payments": "SERVING"}}


@pytest.mark.parametrize("role", ["advertiser", "publisher", "admin"])
async def test_a_user_without_a_telegram_account_is_exactly_not_linked(api, role):
    assert await api.call(User(role), "GET", "/api/me/telegram", 200) == {"linked": False}


async def test_a_telegram_link_is_a_single_use_code_in_the_bots_start_link(api):
    user = User("publisher")
    link = await api.call(user, "POST", "/api/me/telegram/link", 201)
    assert set(link) == TELEGRAM_LINK and LINK_CODE.match(link["code"])
    assert re.fullmatch(r"https://t\.me/[A-Za-z0-9_]+\?start=" + re.escape(link["code"]), link["startLink"])
    assert_timestamps(link, "expiresAt")
    assert (await api.call(user, "POST", "/api/me/telegram/link", 201))["code"] != link["code"]


async def test_unlinking_without_an_account_is_204_and_changes_nothing(api):
    user = User("advertiser")
    response = await api.http.delete("/api/me/telegram", headers=user.auth)
    assert (response.status_code, response.content) == (204, b"")
    assert await api.call(user, "GET", "/api/me/telegram", 200) == {"linked": False}


async def test_publisher_creates_a_pending_channel(api):
    publisher = User("publisher")
    channel = await api.listed(publisher, title="Daily news", pricePerPost=PRICE, extra="ignored")
    assert set(channel) == CHANNEL
    assert (channel["ownerId"], channel["status"], channel["pricePerPost"], channel["currency"]) == \
        (publisher.id, "pending", PRICE, "USD")
    assert_timestamps(channel, "createdAt")
    assert await api.call(User("advertiser"), "GET", f"/api/channels/{channel['id']}", 200) == channel


async def test_admin_approves_and_rejects_channels(api):
    approved = await api.approved_channel()
    assert approved["status"] == "approved"
    publisher = User("publisher")
    channel = await api.listed(publisher, title="Spam", pricePerPost=10)
    rejected = await api.call(api.admin, "POST", f"/api/channels/{channel['id']}/reject", 200, json={"reason": "spam"})
    assert set(rejected) == CHANNEL and rejected["status"] == "rejected"


async def test_channel_list_pages_with_a_cursor(api):
    for _ in range(2):
        await api.approved_channel()
    first = await api.call(api.admin, "GET", "/api/channels", 200, params={"status": "approved", "limit": 1})
    assert set(first) == {"items", "nextCursor"} and len(first["items"]) == 1
    assert isinstance(first["nextCursor"], str)
    second = await api.call(api.admin, "GET", "/api/channels", 200,
                            params={"status": "approved", "limit": 1, "cursor": first["nextCursor"]})
    assert second["items"][0]["id"] != first["items"][0]["id"]
    assert all(set(c) == CHANNEL for c in first["items"] + second["items"])


async def test_foreign_cursor_is_400(api):
    body = await api.call(api.admin, "GET", "/api/channels", 400, params={"cursor": "not-ours"})
    assert_error(body)


async def test_campaign_is_created_in_draft_with_creatives(api):
    advertiser = User("advertiser")
    campaign = await api.call(advertiser, "POST", "/api/campaigns", 201, json={
        "name": "Spring", "creatives": [{"text": "Hello"}, {"text": "With media", "mediaUrl": "https://x.test/a.png"}]})
    assert set(campaign) == CAMPAIGN
    assert (campaign["advertiserId"], campaign["status"], campaign["startAt"], campaign["endAt"]) == \
        (advertiser.id, "draft", None, None)
    assert [set(c) for c in campaign["creatives"]] == [CREATIVE, CREATIVE]
    assert [c["mediaUrl"] for c in campaign["creatives"]] == [None, "https://x.test/a.png"]
    assert_timestamps(campaign, "createdAt", "updatedAt")


async def test_campaign_dates_come_back_in_utc(api):
    advertiser = User("advertiser")
    campaign = await api.call(advertiser, "POST", "/api/campaigns", 201, json={
        "name": "Dated", "startAt": "2031-01-01T12:00:00+02:00", "endAt": "2031-02-01T00:00:00Z"})
    assert (campaign["startAt"], campaign["endAt"]) == ("2031-01-01T10:00:00Z", "2031-02-01T00:00:00Z")


async def test_creative_is_added_and_campaign_moves_along_its_lifecycle(api):
    advertiser = User("advertiser")
    campaign = await api.call(advertiser, "POST", "/api/campaigns", 201, json={"name": "Lifecycle"})
    creative = await api.call(advertiser, "POST", f"/api/campaigns/{campaign['id']}/creatives", 201,
                              json={"text": "Buy"})
    assert set(creative) == CREATIVE and creative["mediaUrl"] is None
    for action, status in [("activate", "active"), ("pause", "paused"), ("resume", "active"), ("cancel", "cancelled")]:
        moved = await api.call(advertiser, "POST", f"/api/campaigns/{campaign['id']}/{action}", 200)
        assert set(moved) == CAMPAIGN and moved["status"] == status


async def test_activation_without_creatives_is_400_with_the_seed_message(api):
    advertiser = User("advertiser")
    campaign = await api.call(advertiser, "POST", "/api/campaigns", 201, json={"name": "Empty"})
    body = await api.call(advertiser, "POST", f"/api/campaigns/{campaign['id']}/activate", 400)
    assert_error(body)
    assert body["error"]["message"] == "Campaign must have at least one creative"


async def test_another_advertiser_cannot_read_a_campaign(api):
    campaign = await api.active_campaign(User("advertiser"))
    # The campaign exists: another advertiser is "not the owner", 403 (API.md "Auth"), not a 404.
    body = await api.call(User("advertiser"), "GET", f"/api/campaigns/{campaign['id']}", 403)
    assert body == {"error": {"code": "forbidden", "message": "Not campaign owner"}}


async def test_campaign_list_has_the_page_shape(api):
    advertiser = User("advertiser")
    await api.active_campaign(advertiser)
    page = await api.call(advertiser, "GET", "/api/campaigns", 200)
    assert set(page) == {"items", "nextCursor"} and page["nextCursor"] is None
    assert len(page["items"]) == 1 and set(page["items"][0]) == CAMPAIGN


async def test_target_is_created_pending_at_the_channel_price_and_submitted(api):
    advertiser = User("advertiser")
    channel = await api.approved_channel()
    campaign = await api.active_campaign(advertiser)
    target = await api.call(advertiser, "POST", f"/api/campaigns/{campaign['id']}/targets", 201, json={
        "channelId": channel["id"], "scheduledAt": in_a_day()})
    assert set(target) == TARGET
    assert (target["status"], target["price"], target["currency"], target["campaignId"], target["channelId"]) == \
        ("pending", PRICE, "USD", campaign["id"], channel["id"])
    assert (target["moderatedBy"], target["moderatedAt"], target["moderationReason"], target["postJob"]) == \
        (None, None, None, None)
    assert_timestamps(target, "scheduledAt")
    base = f"/api/campaigns/{campaign['id']}/targets"
    submitted = await api.call(advertiser, "POST", f"{base}/{target['id']}/submit", 200)
    assert submitted["status"] == "submitted"
    assert await api.call(advertiser, "GET", f"{base}/{target['id']}", 200) == submitted
    page = await api.call(api.admin, "GET", base, 200)
    assert page == {"items": [submitted], "nextCursor": None}


async def test_target_of_another_campaign_is_404(api):
    advertiser, campaign, target = await api.ready_to_approve(funds=0)
    other = await api.active_campaign(advertiser)
    body = await api.call(advertiser, "POST", f"/api/campaigns/{other['id']}/targets/{target['id']}/submit", 404)
    assert_error(body)


async def test_submit_in_a_paused_campaign_is_400(api):
    advertiser = User("advertiser")
    channel = await api.approved_channel()
    campaign = await api.active_campaign(advertiser)
    target = await api.call(advertiser, "POST", f"/api/campaigns/{campaign['id']}/targets", 201, json={
        "channelId": channel["id"], "scheduledAt": in_a_day()})
    await api.call(advertiser, "POST", f"/api/campaigns/{campaign['id']}/pause", 200)
    body = await api.call(advertiser, "POST", f"/api/campaigns/{campaign['id']}/targets/{target['id']}/submit", 400)
    assert body["error"]["message"] == "Campaign must be active to submit targets (current status: paused)"


async def test_target_is_cancelled(api):
    advertiser, campaign, target = await api.ready_to_approve(funds=0)
    cancelled = await api.call(advertiser, "POST",
                               f"/api/campaigns/{campaign['id']}/targets/{target['id']}/cancel", 200)
    assert set(cancelled) == TARGET and cancelled["status"] == "cancelled"


async def test_queue_lists_submitted_targets_with_what_a_moderator_needs(api):
    advertiser, campaign, target = await api.ready_to_approve(funds=0)
    items, cursor = [], None
    while True:
        page = await api.call(api.admin, "GET", "/api/moderation/queue", 200,
                              params={"limit": 200, **({"cursor": cursor} if cursor else {})})
        items += page["items"]
        if not (cursor := page["nextCursor"]):
            break
    item = next(i for i in items if i["id"] == target["id"])
    assert set(item) == QUEUE_ITEM
    assert set(item["channel"]) == CHANNEL and [set(c) for c in item["creatives"]] == [CREATIVE]
    assert (item["campaignName"], item["advertiserId"], item["status"]) == ("Winter sale", advertiser.id, "submitted")


async def test_deposit_is_201_then_replayed_with_200(api):
    user, key = User("advertiser"), uuid.uuid4().hex
    first = await api.deposit(user, 5_000, key)
    assert set(first) == {"transactionId", "wallet"} and set(first["wallet"]) == WALLET
    assert first["wallet"] == {"userId": user.id, "currency": "USD", "balance": 5_000, "held": 0, "pendingPayout": 0}
    again = await api.deposit(user, 5_000, key, status=200)
    assert again == first


async def test_deposit_key_reused_with_another_body_is_409(api):
    user, key = User("advertiser"), uuid.uuid4().hex
    await api.deposit(user, 5_000, key)
    assert_error(await api.deposit(user, 7_000, key, status=409))


async def test_approve_settles_with_escrow_and_post_job(api):
    advertiser, campaign, target = await api.ready_to_approve(funds=10_000)
    result = await api.call(api.admin, "POST", f"/api/moderation/targets/{target['id']}/approve", 200)
    assert set(result) == APPROVED
    assert (result["ok"], result["targetId"], result["status"], result["alreadyApproved"]) == \
        (True, target["id"], "approved", False)
    again = await api.call(api.admin, "POST", f"/api/moderation/targets/{target['id']}/approve", 200)
    assert (again["postJobId"], again["escrowId"], again["alreadyApproved"]) == \
        (result["postJobId"], result["escrowId"], True)

    decision = await api.call(api.admin, "GET", f"/api/moderation/targets/{target['id']}", 200)
    assert set(decision) == DECISION
    assert (decision["decision"], decision["status"], decision["reason"], decision["postJobId"],
            decision["escrowId"]) == ("approve", "approved", None, result["postJobId"], result["escrowId"])

    approved = await api.call(advertiser, "GET", f"/api/campaigns/{campaign['id']}/targets/{target['id']}", 200)
    assert approved["status"] == "approved" and set(approved["postJob"]) == POST_JOB
    assert (approved["postJob"]["id"], approved["postJob"]["status"]) == (result["postJobId"], "queued")
    assert approved["postJob"]["executeAt"] == approved["scheduledAt"]

    escrow = await api.call(advertiser, "GET", f"/api/escrows/{target['id']}", 200)
    assert set(escrow) == ESCROW
    assert (escrow["id"], escrow["amount"], escrow["status"], escrow["advertiserId"]) == \
        (result["escrowId"], PRICE, "held", advertiser.id)
    assert_timestamps(escrow, "createdAt", "updatedAt")


async def test_wallet_and_ledger_after_an_approve(api):
    advertiser, campaign, target = await api.ready_to_approve(funds=10_000)
    await api.call(api.admin, "POST", f"/api/moderation/targets/{target['id']}/approve", 200)
    own = await api.call(advertiser, "GET", "/api/wallet", 200)
    assert own == {"userId": advertiser.id, "currency": "USD", "balance": 10_000 - PRICE, "held": PRICE, "pendingPayout": 0}
    assert await api.call(api.admin, "GET", f"/api/wallets/{advertiser.id}", 200) == own
    ledger = await api.call(advertiser, "GET", "/api/wallet/ledger", 200)
    assert set(ledger) == {"items", "nextCursor"} and ledger["nextCursor"] is None
    assert all(set(e) == LEDGER_ENTRY for e in ledger["items"])
    assert [(e["kind"], e["amount"], e["balanceAfter"]) for e in ledger["items"]] == \
        [("escrow_hold", -PRICE, 10_000 - PRICE), ("deposit", 10_000, 10_000)]
    assert ledger["items"][1]["reference"] == "top-up"


async def test_approve_without_funds_is_402_and_the_target_is_submitted_again(api):
    advertiser, campaign, target = await api.ready_to_approve(funds=0)
    body = await api.call(api.admin, "POST", f"/api/moderation/targets/{target['id']}/approve", 402)
    assert_error(body, "insufficient_funds")
    decision = await api.call(api.admin, "GET", f"/api/moderation/targets/{target['id']}", 200)
    assert (decision["status"], decision["reason"], decision["escrowId"]) == ("failed", "insufficient_funds", None)
    again = await api.call(advertiser, "GET", f"/api/campaigns/{campaign['id']}/targets/{target['id']}", 200)
    assert again["status"] == "submitted"


async def test_approve_of_a_target_in_a_paused_campaign_is_400(api):
    advertiser, campaign, target = await api.ready_to_approve()
    await api.call(advertiser, "POST", f"/api/campaigns/{campaign['id']}/pause", 200)
    assert_error(await api.call(api.admin, "POST", f"/api/moderation/targets/{target['id']}/approve", 400))


async def test_reject_returns_the_rejected_target(api):
    advertiser, campaign, target = await api.ready_to_approve(funds=0)
    rejected = await api.call(api.admin, "POST", f"/api/moderation/targets/{target['id']}/reject", 200,
                              json={"reason": "off-topic"})
    assert set(rejected) == TARGET
    assert (rejected["status"], rejected["moderatedBy"], rejected["moderationReason"]) == \
        ("rejected", api.admin.id, "off-topic")
    assert_timestamps(rejected, "moderatedAt")


async def test_decision_of_an_undecided_target_is_404(api):
    advertiser, campaign, target = await api.ready_to_approve(funds=0)
    assert_error(await api.call(api.admin, "GET", f"/api/moderation/targets/{target['id']}", 404), None)


async def test_escrow_of_someone_else_is_refused(api):
    advertiser, campaign, target = await api.ready_to_approve(funds=10_000)
    await api.call(api.admin, "POST", f"/api/moderation/targets/{target['id']}/approve", 200)
    # The escrow exists (the approve held it): a stranger is refused 403, not told 404.
    body = await api.call(User("advertiser"), "GET", f"/api/escrows/{target['id']}", 403)
    assert body == {"error": {"code": "forbidden",
                              "message": "only the escrow's advertiser or publisher or an admin may read it"}}
    # The publisher of the target's channel is a party to it and reads it.
    channel_owner = (await api.call(api.admin, "GET", f"/api/channels/{target['channelId']}", 200))["ownerId"]
    escrow = await api.call(User("publisher", channel_owner), "GET", f"/api/escrows/{target['id']}", 200)
    assert escrow["publisherId"] == channel_owner


async def test_approve_that_has_not_settled_within_the_wait_is_202(api, http_no_wait):
    advertiser, campaign, target = await api.ready_to_approve(funds=10_000)
    response = await http_no_wait.post(f"/api/moderation/targets/{target['id']}/approve", headers=api.admin.auth)
    assert response.status_code == 202, response.text
    body = response.json()
    assert set(body) == {"ok", "targetId", "status", "decisionId"}
    assert (body["ok"], body["targetId"], body["status"]) == (True, target["id"], "approving")

    async def approved():
        decision = await api.call(api.admin, "GET", f"/api/moderation/targets/{target['id']}", 200)
        return decision if decision["status"] == "approved" else None
    decision = await eventually(approved)
    assert decision["decisionId"] == body["decisionId"]


async def test_ready_details_are_for_admins(http):
    assert (await http.get("/api/health/ready", params={"details": "true"})).status_code == 401
    advertiser = User("advertiser").auth
    assert (await http.get("/api/health/ready", params={"details": "true"}, headers=advertiser)).status_code == 403


async def test_ready_details_report_each_outbox_backlog(http):
    response = await http.get("/api/health/ready", params={"details": "true"}, headers=User("admin").auth)
    assert response.status_code == 200
    outbox = response.json()["outbox"]
    assert set(outbox) == {"campaigns", "moderation"}
    assert set(outbox["moderation"]) == {"pending", "dead", "maxAttempts", "oldestPendingAgeSeconds"}
