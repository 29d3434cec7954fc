"""After approval, over HTTP against `adtech run` with short windows: the post
goes out at scheduledAt through the stack's Bot API sandbox (the one stand-in
for Telegram), is checked while it must stay up, and the publisher is paid
(less the fee), or the advertiser is refunded; publishers withdraw.

The stack is this module's own: windows of seconds (POST_RETENTION_S,
PUBLISH_DEADLINE_S) and a short lead time, set by settings."""
import asyncio
import datetime as dt
import sys
import time

import httpx
import pytest

from tests.e2e.client import Api, assert_error, handle, iso
from tests.e2e.conftest import ROOT, run_stack

PRICE = 2_000
FEE = PRICE * 1000 // 10_000  # PLATFORM_FEE_BPS default: 10 %
RETENTION_S = 3
DEADLINE_S = 4
LEAD_MS = 500
SETTLE_S = 30.0

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stack():
    with run_stack(CAMPAIGN_TARGET_MIN_LEAD_MS=str(LEAD_MS), POST_RETENTION_S=str(RETENTION_S), POST_CHECKS="2",
                   PUBLISH_DEADLINE_S=str(DEADLINE_S), PUBLISHER_POLL_MS="100", PUBLISHER_BACKOFF_BASE_MS="200",
                   PUBLISHER_BACKOFF_CAP_MS="500", OUTBOX_POLL_MS="100") as stack:
        yield stack


@pytest.fixture(scope="module")
async def api(stack):
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30.0) as http, stack.sandbox() as control:
        yield Api(http, stack.jwt_secret, stack.min_lead_ms, control)


@pytest.fixture(scope="module")
async def sandbox(stack):
    async with httpx.AsyncClient(base_url=stack.sandbox_url, timeout=10.0, headers=stack.sandbox_headers()) as http:
        yield Sandbox(http)


@pytest.fixture(autouse=True)
async def no_faults_left(sandbox):
    yield
    (await sandbox.http.delete("/sandbox/faults")).raise_for_status()


class Sandbox:
    """The stack's Bot API sandbox, through its control API."""

    def __init__(self, http: httpx.AsyncClient):
        self.http = http

    async def posts(self, channel: dict) -> list[dict]:
        response = await self.http.get(f"/sandbox/channels/{channel['handle'].lstrip('@')}/posts")
        return response.json() if response.status_code == 200 else []

    async def delete(self, channel: dict, message_id: int) -> None:
        response = await self.http.delete(f"/sandbox/channels/{channel['handle'].lstrip('@')}/posts/{message_id}")
        response.raise_for_status()

    async def refuse(self, channel: dict, mode: str) -> None:
        response = await self.http.post(f"/sandbox/channels/{channel['handle'].lstrip('@')}/refuse", json={"mode": mode})
        response.raise_for_status()

    async def fault(self, method: str, kind: str, count: int = 1, **more) -> None:
        """The next `count` posts in a channel by `method` fail; the bot's
        messages to people (sendMessage too) are not touched."""
        body = {"method": method, "kind": kind, "count": count, "chat_type": "channel", **more}
        response = await self.http.post("/sandbox/faults", json=body)
        response.raise_for_status()


async def approved(api: Api, *, in_s: float = 2.0, text: str = "Fresh coffee every morning", funds: int = PRICE):
    """A target approved to be published `in_s` seconds from now: (advertiser,
    publisher, channel, target path, approve answer)."""
    publisher, channel = await api.approved_channel(price=PRICE)
    advertiser = api.user("advertiser")
    await api.open_wallet(advertiser)
    await api.deposit(advertiser, funds)
    campaign = await api.ok("POST", "/api/campaigns", advertiser, 201,
                            json={"name": "Launch", "creatives": [{"text": text}]})
    await api.ok("POST", f"/api/campaigns/{campaign['id']}/activate", advertiser)
    at = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=in_s)
    target = await api.ok("POST", f"/api/campaigns/{campaign['id']}/targets", advertiser, 201,
                          json={"channelId": channel["id"], "scheduledAt": iso(at)})
    path = f"/api/campaigns/{campaign['id']}/targets/{target['id']}"
    await api.ok("POST", f"{path}/submit", advertiser)
    answer = await api.ok("POST", f"/api/moderation/targets/{target['id']}/approve", api.admin)
    return advertiser, publisher, channel, path, answer


async def until(api: Api, path: str, user, check, timeout: float = SETTLE_S) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        target = await api.ok("GET", path, user)
        if check(target):
            return target
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout} s: {target}")
        await asyncio.sleep(0.1)


def status_is(*statuses):
    return lambda target: target["status"] in statuses


async def test_an_approved_post_goes_out_at_its_time_stays_up_and_the_publisher_is_paid_less_the_fee(api, sandbox):
    advertiser, publisher, channel, path, answer = await approved(api, text="Spring sale: 20% off")
    target = await api.ok("GET", path, advertiser)
    assert target["postJob"]["status"] == "queued" and target["postJob"]["messageUrl"] is None
    assert await sandbox.posts(channel) == []  # not before scheduledAt

    published = await until(api, path, advertiser, status_is("published", "completed"))
    job = published["postJob"]
    assert job["publishedAt"] >= published["scheduledAt"]
    posts = await sandbox.posts(channel)
    assert [post["text"] for post in posts] == ["Spring sale: 20% off"]
    assert job["messageUrl"] == f"https://t.me/{channel['handle'].lstrip('@')}/{posts[0]['message_id']}"

    completed = await until(api, path, advertiser, status_is("completed"))
    assert completed["postJob"]["status"] == "verified" and completed["postJob"]["verifiedAt"] is not None

    async def paid():
        return (await api.wallet(publisher))["balance"] == PRICE - FEE
    deadline = time.monotonic() + SETTLE_S
    while not await paid():
        assert time.monotonic() < deadline, await api.wallet(publisher)
        await asyncio.sleep(0.1)
    assert await api.wallet(advertiser) == {"userId": advertiser.id, "currency": "USD", "balance": 0, "held": 0,
                                            "pendingPayout": 0}
    escrow = await api.ok("GET", f"/api/escrows/{completed['id']}", publisher)
    assert escrow["status"] == "released"
    kinds = [(entry["kind"], entry["amount"]) for entry in await api.ledger(publisher)]
    assert kinds == [("escrow_release", PRICE - FEE)]

    # The channel's owner sees the post among the channel's, as does an admin.
    mine = await api.ok("GET", f"/api/channels/{channel['id']}/posts", publisher)
    assert [(item["targetId"], item["postJob"]["status"], item["price"]) for item in mine["items"]] == [
        (completed["id"], "verified", PRICE)]
    stranger = await api.call("GET", f"/api/channels/{channel['id']}/posts", api.user("publisher"))
    assert_error(stranger, 403)
    every = await api.ok("GET", "/api/post-jobs", api.admin, params={"status": "verified", "limit": 200})
    assert completed["postJob"]["id"] in {item["postJob"]["id"] for item in every["items"]}

    # The publisher withdraws what was earned; an admin pays it out.
    key = {"Idempotency-Key": f"payout-{completed['id']}"}
    asked = await api.ok("POST", "/api/wallet/withdrawals", publisher, 201,
                         json={"amount": PRICE - FEE, "destination": "IBAN DE00 1234"}, headers=key)
    assert asked["status"] == "pending"
    assert await api.wallet(publisher) == {"userId": publisher.id, "currency": "USD", "balance": 0, "held": 0,
                                           "pendingPayout": PRICE - FEE}
    paid_out = await api.ok("POST", f"/api/withdrawals/{asked['id']}/complete", api.admin,
                            json={"externalReference": "bank-tx-1"})
    assert paid_out["status"] == "paid"
    assert (await api.wallet(publisher))["pendingPayout"] == 0


async def test_a_post_removed_inside_the_window_fails_the_target_and_refunds_the_advertiser(api, sandbox):
    advertiser, publisher, channel, path, _ = await approved(api)
    published = await until(api, path, advertiser, status_is("published"))
    [post] = await sandbox.posts(channel)
    await sandbox.delete(channel, post["message_id"])

    failed = await until(api, path, advertiser, status_is("failed", "completed"))
    assert failed["status"] == "failed", failed
    assert failed["postJob"]["status"] == "failed"
    assert "removed" in failed["postJob"]["failureReason"]
    await refunded(api, advertiser, failed["id"])
    assert (await api.wallet(publisher))["balance"] == 0
    assert published["postJob"]["messageUrl"]


async def refunded(api: Api, advertiser, target_id: str) -> None:
    deadline = time.monotonic() + SETTLE_S
    while (wallet := await api.wallet(advertiser))["balance"] != PRICE:
        assert time.monotonic() < deadline, wallet
        await asyncio.sleep(0.1)
    assert wallet["held"] == 0
    escrow = await api.ok("GET", f"/api/escrows/{target_id}", api.admin)
    assert escrow["status"] == "refunded"


async def test_a_channel_that_refuses_the_post_fails_the_target_and_refunds(api, sandbox):
    advertiser, _, channel, path, _ = await approved(api)
    await sandbox.refuse(channel, "not_admin")
    failed = await until(api, path, advertiser, status_is("failed", "published", "completed"))
    assert failed["status"] == "failed" and "administrator" in failed["postJob"]["failureReason"], failed
    assert await sandbox.posts(channel) == []
    await refunded(api, advertiser, failed["id"])


async def test_flood_control_and_server_errors_are_retried_and_the_post_goes_out_once(api, sandbox):
    await sandbox.fault("sendMessage", "429", 1, retry_after=1, chat_type="channel")
    await sandbox.fault("sendMessage", "500", 2, chat_type="channel")
    advertiser, _, channel, path, _ = await approved(api)
    published = await until(api, path, advertiser, status_is("published", "completed", "failed"))
    assert published["status"] != "failed", published
    assert len(await sandbox.posts(channel)) == 1


async def test_a_post_not_out_by_its_deadline_is_a_no_show_and_refunded(api, sandbox):
    await sandbox.fault("sendMessage", "502", 1000, chat_type="channel")
    advertiser, _, channel, path, _ = await approved(api)
    failed = await until(api, path, advertiser, status_is("failed", "published", "completed"))
    assert failed["status"] == "failed" and "deadline" in failed["postJob"]["failureReason"], failed
    assert await sandbox.posts(channel) == []
    await refunded(api, advertiser, failed["id"])


async def test_cancelling_before_publication_refunds_and_cancels_the_job(api, sandbox):
    advertiser, _, channel, path, _ = await approved(api, in_s=60)
    cancelled = await api.ok("POST", f"{path}/cancel", advertiser)
    assert (cancelled["status"], cancelled["postJob"]["status"]) == ("cancelled", "cancelled")
    await refunded(api, advertiser, cancelled["id"])
    assert await sandbox.posts(channel) == []


async def test_cancelling_while_the_post_is_being_published_is_409(api, sandbox):
    await sandbox.fault("sendMessage", "stall_after_post", 1, stall_s=4, chat_type="channel")
    advertiser, _, channel, path, _ = await approved(api)
    await until(api, path, advertiser, lambda t: t["postJob"]["status"] == "publishing")
    refused = await api.call("POST", f"{path}/cancel", advertiser)
    assert_error(refused, 409, code="post_job_started")
    published = await until(api, path, advertiser, status_is("published", "completed"))
    assert published["postJob"]["messageUrl"]
    assert len(await sandbox.posts(channel)) == 1
    # Published or completed now: a status with no cancel move, a state rule.
    refused = await api.call("POST", f"{path}/cancel", api.admin)
    assert_error(refused, 400, code="invalid_transition")


async def test_approving_a_channel_the_bot_cannot_post_to_is_400(api, sandbox):
    publisher, name = api.user("publisher"), handle()
    await api.own_channel(publisher, name)
    channel = await api.ok("POST", "/api/channels", publisher, 201,
                           json={"title": "No bot here", "handle": name, "pricePerPost": PRICE})
    # The bot could post when the chat was listed; it lost its rights before the approve.
    await sandbox.refuse(channel, "not_admin")
    refused = await api.call("POST", f"/api/channels/{channel['id']}/approve", api.admin)
    assert_error(refused, 400, code="channel_cannot_post")
    assert "administrator" in refused.json()["error"]["message"]
    assert (await api.ok("GET", f"/api/channels/{channel['id']}", publisher))["status"] == "pending"


async def test_resolving_a_job_that_is_not_in_review_is_409(api):
    advertiser, _, _, path, answer = await approved(api, in_s=60)
    refused = await api.call("POST", f"/api/post-jobs/{answer['postJobId']}/resolve", api.admin,
                             json={"outcome": "retry"})
    assert_error(refused, 409, code="post_job_not_in_review")
    missing = await api.call("POST", "/api/post-jobs/00000000-0000-0000-0000-000000000001/resolve", api.admin,
                             json={"outcome": "retry"})
    assert_error(missing, 404)


async def test_adtech_verify_finds_every_settled_target_paid_or_refunded_once(stack, api):
    """Last in this module: everything above has settled (or waits for its
    time); the cross-service checks and the ledger agree."""
    deadline = time.monotonic() + SETTLE_S
    while True:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "operations", "verify", cwd=ROOT, env=stack.verify_env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
        if proc.returncode == 0 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    assert proc.returncode == 0, out.decode() + err.decode()
    for check in ("completed_target_escrow_released", "released_escrow_has_completed_target",
                  "failed_target_escrow_refunded", "ledger:each_paid_withdrawal_paid_once"):
        assert check in out.decode()
