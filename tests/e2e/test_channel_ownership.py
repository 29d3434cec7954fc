"""Who owns a channel, and who agrees (API.md "Telegram accounts", "Channel
ownership and consent"), over HTTP against `adtech run`, with the stack's
Bot API sandbox as Telegram: a user links a Telegram account by pressing
Start in the platform's bot; only a chat's creator or administrator lists
it, once; an approved post of a channel that does not auto-accept waits for
its owner's answer (by route or by the bot's buttons) until `acceptBy`; an
owner who lost the chat before a post's time gets no post and no money.

The stack is this module's own, with short windows: a lead of 0.5 s, no
answer lead (PUBLISHER_ANSWER_LEAD_S=0: a post due in seconds can still be
answered until its time) and PUBLISHER_ANSWER_S of ANSWER_S seconds (an
order expires while we watch), and link codes valid LINK_TTL_S seconds."""
import asyncio
import dataclasses
import datetime as dt
import random
import re
import time
import uuid

import httpx
import pytest

from tests.e2e.client import Api, User, assert_error, handle, iso, parse_time
from tests.e2e.conftest import run_stack, verify_runner
from tests.harness import free_slot

PRICE = 2_000
FUNDS = 10_000
ANSWER_S = 10
LINK_TTL_S = 30  # TELEGRAM_LINK_TTL_S (its least): a code asked for first expires while the others run
SETTLE_S = 30.0
CODE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")
CHANNEL = {"id", "ownerId", "title", "handle", "telegramChatId", "pricePerPost", "currency", "autoAccept", "status",
           "rejectionReason", "verifiedAt", "createdAt"}
POST_JOB = {"id", "executeAt", "status", "acceptBy", "answeredAt", "declineReason", "messageUrl", "publishedAt",
            "verifiedAt", "failureReason"}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stack():
    with run_stack(CAMPAIGN_TARGET_MIN_LEAD_MS="500", PUBLISHER_POLL_MS="100", OUTBOX_POLL_MS="100",
                   PUBLISHER_BACKOFF_BASE_MS="200", PUBLISHER_BACKOFF_CAP_MS="500",
                   PUBLISHER_ANSWER_S=str(ANSWER_S), PUBLISHER_ANSWER_LEAD_S="0",
                   TELEGRAM_LINK_TTL_S=str(LINK_TTL_S)) as stack:
        yield stack


@pytest.fixture(scope="module")
async def api(stack):
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30.0, limits=limits) as http, \
            stack.sandbox() as control:
        yield Api(http, stack.jwt_secret, stack.min_lead_ms, control)


@pytest.fixture(scope="module")
def adtech_verify(stack):
    """tests/e2e/conftest.py's adtech_verify, against this module's stack."""
    return verify_runner(stack)


# ---- helpers ---------------------------------------------------------------------

async def until(read, check, timeout: float = SETTLE_S, what: str = "the condition"):
    """read() again and again until check(value) holds; the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = await read()
        if check(value):
            return value
        assert time.monotonic() < deadline, f"{what} not reached within {timeout} s: {value}"
        await asyncio.sleep(0.1)


async def telegram_of(api: Api, user: User) -> dict:
    return await api.ok("GET", "/api/me/telegram", user)


async def new_replies(api: Api, account: dict, seen: int) -> list[dict]:
    """The bot's messages to `account` once there are more than `seen`, newest first."""
    return await until(lambda: api.sandbox.messages(account["id"]), lambda messages: len(messages) > seen,
                       what=f"a reply of the bot to {account['id']}")


async def start(api: Api, account: dict, code: str) -> dict:
    """`account` sends `/start <code>` to the bot: the bot's reply."""
    seen = len(await api.sandbox.messages(account["id"]))
    await api.sandbox.send_message(account["id"], f"/start {code}")
    return (await new_replies(api, account, seen))[0]


async def link(api: Api, user: User, account: dict) -> dict:
    """`user` binds `account` as a person does: the bot's reply."""
    code = (await api.ok("POST", "/api/me/telegram/link", user, 201))["code"]
    reply = await start(api, account, code)
    me = await until(lambda: telegram_of(api, user), lambda me: me["linked"], what=f"{user.id} linked")
    assert me["telegramUserId"] == account["id"], me
    api.telegram[user.id] = account
    return reply


async def list_channel(api: Api, publisher: User, name: str, **fields) -> httpx.Response:
    body = {"title": "Cats daily", "handle": name, "pricePerPost": PRICE, **fields}
    return await api.call("POST", "/api/channels", publisher, json=body)


async def listed(api: Api, *, auto_accept: bool = False, approve: bool = True,
                 publisher: User | None = None) -> tuple[User, dict]:
    """A chat its publisher owns in Telegram (creator), listed, approved."""
    publisher = publisher or api.user("publisher")
    name = handle()
    await api.own_channel(publisher, name)
    response = await list_channel(api, publisher, name, autoAccept=auto_accept)
    assert response.status_code == 201, response.text
    channel = response.json()
    if approve:
        channel = await api.ok("POST", f"/api/channels/{channel['id']}/approve", api.admin)
    return publisher, channel


@dataclasses.dataclass
class Order:
    """An approved target on a publisher's channel: its post job waits for
    the owner unless the channel auto-accepts."""
    advertiser: User
    publisher: User
    channel: dict
    target: dict
    job_id: str
    approved_between: tuple[dt.datetime, dt.datetime]  # (just before the approve, just after)
    account: dict  # the owner's Telegram account when the order was made

    @property
    def path(self) -> str:
        return f"/api/campaigns/{self.target['campaignId']}/targets/{self.target['id']}"


async def order(api: Api, *, auto_accept: bool = False, in_s: float | None = None) -> Order:
    """An advertiser with FUNDS, a target at PRICE on a fresh channel, approved.
    `in_s`: scheduled that many seconds from now (else a free slot a day ahead)."""
    publisher, channel = await listed(api, auto_accept=auto_accept)
    advertiser = api.user("advertiser")
    await api.deposit(advertiser, FUNDS)
    campaign = await api.campaign(advertiser)
    at = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=in_s) if in_s is not None else free_slot()
    target = await api.add_target(advertiser, campaign, channel, iso(at))
    await api.submit(advertiser, target)
    before = dt.datetime.now(dt.timezone.utc)
    answer = await api.approve(target["id"])
    after = dt.datetime.now(dt.timezone.utc)
    assert answer.status_code == 200, answer.text
    return Order(advertiser, publisher, channel, target, answer.json()["postJobId"], (before, after),
                 api.telegram[publisher.id])


async def job_of(api: Api, order_: Order) -> dict:
    """The order's post job as the channel's post list shows it (an admin
    reads it; the Target's embedded postJob is checked against it below)."""
    page = await api.ok("GET", f"/api/channels/{order_.channel['id']}/posts", api.admin, params={"limit": 200})
    [item] = [item for item in page["items"] if item["targetId"] == order_.target["id"]]
    return item["postJob"]


async def target_of(api: Api, order_: Order) -> dict:
    return await api.ok("GET", order_.path, api.admin)


async def answer(api: Api, order_: Order, action: str, user: User | None = None, reason: str = "not my audience"):
    body = {"reason": reason} if action == "decline" else None
    return await api.call("POST", f"/api/post-jobs/{order_.job_id}/{action}", user or order_.publisher, json=body)


async def refunded(api: Api, order_: Order) -> None:
    """The advertiser's wallet back to FUNDS, nothing held, the escrow refunded."""
    wallet = await until(lambda: api.wallet(order_.advertiser), lambda w: w["held"] == 0,
                         what="the refund of the advertiser")
    assert (wallet["balance"], wallet["held"]) == (FUNDS, 0), wallet
    escrow = await api.ok("GET", f"/api/escrows/{order_.target['id']}", api.admin)
    assert escrow["status"] == "refunded", escrow


async def still_held(api: Api, order_: Order) -> None:
    wallet = await api.wallet(order_.advertiser)
    assert (wallet["balance"], wallet["held"]) == (FUNDS - PRICE, PRICE), wallet
    assert (await api.ok("GET", f"/api/escrows/{order_.target['id']}", api.admin))["status"] == "held"


async def order_message(api: Api, account: dict) -> dict:
    """The bot's message to `account` carrying Accept and Decline buttons."""
    def has_buttons(messages):
        return any(_buttons(m) for m in messages)
    messages = await until(lambda: api.sandbox.messages(account["id"]), has_buttons,
                           what=f"an order with Accept/Decline in {account['id']}'s chat with the bot")
    return next(m for m in messages if _buttons(m))


def _buttons(message: dict) -> dict[str, str]:
    """{"accept": callback_data, "decline": callback_data} when the message has both."""
    found = {}
    for button in message["buttons"]:
        for word in ("accept", "decline"):
            if word in button["text"].lower():
                found[word] = button["callback_data"]
    return found if set(found) == {"accept", "decline"} else {}


async def message_by_id(api: Api, account: dict, message_id: int) -> dict:
    return next(m for m in await api.sandbox.messages(account["id"]) if m["message_id"] == message_id)


# ---- linking a Telegram account ----------------------------------------------------

@pytest.fixture(scope="module")
async def early_link(api) -> tuple[User, dict]:
    """A user's link, asked for first thing (the first test uses it): it has
    expired by the time the expired-code test near the end runs."""
    user = api.user("publisher")
    return user, await api.ok("POST", "/api/me/telegram/link", user, 201)


async def test_a_link_is_a_random_single_use_code_in_the_bots_start_link_that_expires(api, early_link):
    user = api.user("publisher")
    before = dt.datetime.now(dt.timezone.utc)
    first = await api.ok("POST", "/api/me/telegram/link", user, 201)
    second = await api.ok("POST", "/api/me/telegram/link", user, 201)

    for link_ in (first, second):
        assert set(link_) == {"code", "startLink", "expiresAt"}
        assert CODE.match(link_["code"]), link_
        assert re.fullmatch(r"https://t\.me/[A-Za-z0-9_]+\?start=" + re.escape(link_["code"]), link_["startLink"])
        assert TIMESTAMP.match(link_["expiresAt"])
        expires = parse_time(link_["expiresAt"])
        assert before + dt.timedelta(seconds=LINK_TTL_S - 1) <= expires <= \
            dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=LINK_TTL_S + 1), link_
    assert len({first["code"], second["code"], early_link[1]["code"]}) == 3


async def test_start_with_the_code_binds_the_account_and_the_bot_answers_in_the_users_chat(api):
    user = api.user("advertiser")  # any role links
    account = await api.sandbox.create_user(f"tg_{uuid.uuid4().hex[:10]}")
    assert await telegram_of(api, user) == {"linked": False}

    reply = await link(api, user, account)

    me = await telegram_of(api, user)
    assert set(me) == {"linked", "telegramUserId", "username", "linkedAt"}
    assert (me["linked"], me["telegramUserId"], me["username"]) == (True, account["id"], account["username"])
    assert TIMESTAMP.match(me["linkedAt"])
    assert reply["text"] and reply["buttons"] == []


async def test_a_used_code_binds_nothing_more_and_the_bot_says_so(api):
    owner, account = api.user("publisher"), await api.sandbox.create_user()
    code = (await api.ok("POST", "/api/me/telegram/link", owner, 201))["code"]
    welcome = await start(api, account, code)
    await until(lambda: telegram_of(api, owner), lambda me: me["linked"], what="the first use of the code")

    latecomer = await api.sandbox.create_user()
    refusal = await start(api, latecomer, code)

    assert refusal["text"] and refusal["text"] != welcome["text"], (refusal, welcome)
    assert (await telegram_of(api, owner))["telegramUserId"] == account["id"]
    # The latecomer's account is bound to nobody: another user binds it.
    newcomer = api.user("publisher")
    await link(api, newcomer, latecomer)


async def test_an_unknown_code_binds_nothing_and_the_bot_says_so(api):
    account = await api.sandbox.create_user()
    welcome_text = (await start(api, await api.sandbox.create_user(),
                                (await api.ok("POST", "/api/me/telegram/link", api.user("publisher"), 201))["code"]))["text"]

    refusal = await start(api, account, uuid.uuid4().hex)

    assert refusal["text"] and refusal["text"] != welcome_text, refusal
    user = api.user("publisher")
    await link(api, user, account)  # it was bound to nobody


async def test_another_users_code_sent_from_an_account_already_bound_binds_nothing(api):
    first, second = api.user("publisher"), api.user("publisher")
    account = await api.sandbox.create_user()
    welcome = await link(api, first, account)
    code = (await api.ok("POST", "/api/me/telegram/link", second, 201))["code"]

    refusal = await start(api, account, code)

    assert refusal["text"] and refusal["text"] != welcome["text"], refusal
    assert await telegram_of(api, second) == {"linked": False}
    assert (await telegram_of(api, first))["telegramUserId"] == account["id"]


async def test_unlinking_answers_204_and_then_the_user_is_exactly_not_linked(api):
    user, account = api.user("publisher"), await api.sandbox.create_user()
    await link(api, user, account)

    response = await api.call("DELETE", "/api/me/telegram", user)

    assert (response.status_code, response.content) == (204, b"")
    assert await telegram_of(api, user) == {"linked": False}
    api.telegram.pop(user.id, None)
    await link(api, user, account)  # the account is free again


async def test_unlinking_keeps_the_users_channels(api):
    publisher, channel = await listed(api)

    assert (await api.call("DELETE", "/api/me/telegram", publisher)).status_code == 204
    api.telegram.pop(publisher.id, None)

    kept = await api.ok("GET", f"/api/channels/{channel['id']}", publisher)
    assert (kept["ownerId"], kept["status"]) == (publisher.id, "approved")


# ---- who may list a chat --------------------------------------------------------------

async def test_listing_before_linking_a_telegram_account_is_400_telegram_not_linked(api):
    response = await list_channel(api, api.user("publisher"), handle())
    assert_error(response, 400, code="telegram_not_linked")


@pytest.mark.parametrize("status", ["member", "left", None], ids=["member", "left", "never_set"])
async def test_a_publisher_who_is_not_an_administrator_cannot_list_someone_elses_channel(api, status):
    owner, channel = await listed(api)
    impostor = api.user("publisher")
    account = await api.link_telegram(impostor)
    if status:
        await api.sandbox.set_member(channel["handle"], account["id"], status)

    assert_error(await list_channel(api, impostor, channel["handle"]), 403, code="not_channel_admin")
    # Nor before anyone listed it.
    unlisted = handle()
    if status:
        await api.sandbox.set_member(unlisted, account["id"], status)
    assert_error(await list_channel(api, impostor, unlisted), 403, code="not_channel_admin")


async def test_even_an_administrator_cannot_list_a_chat_listed_already_in_any_case_of_its_handle(api):
    owner, admin_of_chat = api.user("publisher"), api.user("publisher")
    name = f"@Cats{uuid.uuid4().hex[:10]}"
    await api.own_channel(owner, name)
    await api.own_channel(admin_of_chat, name, "administrator")
    first = await list_channel(api, owner, name)
    assert first.status_code == 201, first.text
    assert first.json()["handle"].lower() == name.lower()

    for variant in (name, name.lower(), name.upper(), "@" + name[1:].swapcase()):
        assert_error(await list_channel(api, admin_of_chat, variant), 409, code="channel_already_listed")
    assert_error(await list_channel(api, owner, name.lower()), 409, code="channel_already_listed")
    # Approved, it is still the one live listing.
    await api.ok("POST", f"/api/channels/{first.json()['id']}/approve", api.admin)
    assert_error(await list_channel(api, admin_of_chat, name.lower()), 409, code="channel_already_listed")


async def test_a_chat_telegram_does_not_know_is_400_channel_not_found(api):
    publisher, name = api.user("publisher"), handle()
    await api.own_channel(publisher, name)
    await api.sandbox.refuse(name, "not_found")

    assert_error(await list_channel(api, publisher, name), 400, code="channel_not_found")


async def test_a_chat_the_bot_cannot_post_in_is_400_channel_cannot_post(api):
    publisher, name = api.user("publisher"), handle()
    await api.own_channel(publisher, name)
    await api.sandbox.refuse(name, "not_admin")

    assert_error(await list_channel(api, publisher, name), 400, code="channel_cannot_post")
    await api.sandbox.refuse(name, "off")
    assert (await list_channel(api, publisher, name)).status_code == 201  # nothing was left behind


async def test_ten_administrators_listing_one_chat_at_once_get_exactly_one_201_and_nine_409(api):
    name = handle()
    publishers = [api.user("publisher") for _ in range(10)]
    await asyncio.gather(*(api.own_channel(p, name, "administrator") for p in publishers))

    answers = await asyncio.gather(*(list_channel(api, p, name) for p in publishers))

    codes = sorted(a.status_code for a in answers)
    assert codes == [201] + [409] * 9, [(a.status_code, a.text) for a in answers]
    for refused in (a for a in answers if a.status_code == 409):
        assert_error(refused, 409, code="channel_already_listed")
    winner = next(a.json() for a in answers if a.status_code == 201)
    pending, cursor = [], None
    while True:
        page = await api.ok("GET", "/api/channels", api.admin,
                            params={"status": "pending", "limit": 200, **({"cursor": cursor} if cursor else {})})
        pending += [c for c in page["items"] if c["handle"].lower() == name.lower()]
        if not (cursor := page["nextCursor"]):
            break
    assert [c["id"] for c in pending] == [winner["id"]]


async def test_a_currency_other_than_usd_is_400_and_usd_is_the_default(api):
    publisher, name = api.user("publisher"), handle()
    await api.own_channel(publisher, name)

    assert_error(await list_channel(api, publisher, name, currency="EUR"), 400, code="currency_not_supported")
    created = await list_channel(api, publisher, name, currency="USD")
    assert created.status_code == 201, created.text
    assert created.json()["currency"] == "USD"
    _, default = await listed(api, approve=False)
    assert default["currency"] == "USD"


async def test_a_rejected_listing_frees_the_chat_for_a_new_one(api):
    owner, other_admin = api.user("publisher"), api.user("publisher")
    name = handle()
    await api.own_channel(owner, name)
    await api.own_channel(other_admin, name, "administrator")
    first = (await list_channel(api, owner, name)).json()
    rejected = await api.ok("POST", f"/api/channels/{first['id']}/reject", api.admin, json={"reason": "spam"})
    assert (rejected["status"], rejected["rejectionReason"]) == ("rejected", "spam")

    again = await list_channel(api, other_admin, name)

    assert again.status_code == 201, again.text
    assert again.json()["status"] == "pending" and again.json()["id"] != first["id"]
    # The old listing cannot come back beside the live one.
    resubmitted = await api.call("POST", f"/api/channels/{first['id']}/resubmit", owner)
    assert resubmitted.status_code in (400, 409), resubmitted.text
    assert_error(resubmitted, resubmitted.status_code)
    assert (await api.ok("GET", f"/api/channels/{first['id']}", owner))["status"] == "rejected"


# ---- the channel ---------------------------------------------------------------------

async def test_a_channel_shows_its_telegram_chat_when_it_was_verified_and_whether_it_auto_accepts(api):
    publisher, channel = await listed(api, approve=False)

    assert set(channel) == CHANNEL
    assert channel["telegramChatId"] == (await api.sandbox.channel(channel["handle"]))["chat_id"]
    assert TIMESTAMP.match(channel["verifiedAt"])
    assert (channel["autoAccept"], channel["rejectionReason"], channel["status"]) == (False, None, "pending")
    assert await api.ok("GET", f"/api/channels/{channel['id']}", api.user("advertiser")) == channel
    _, auto = await listed(api, auto_accept=True, approve=False)
    assert auto["autoAccept"] is True


async def test_the_owner_changes_title_price_and_auto_accept_and_the_new_price_applies_to_later_targets(api):
    publisher, channel = await listed(api)
    advertiser = api.user("advertiser")
    campaign = await api.campaign(advertiser)
    earlier = await api.add_target(advertiser, campaign, channel)

    patched = await api.ok("PATCH", f"/api/channels/{channel['id']}", publisher,
                           json={"title": "Cats weekly", "pricePerPost": PRICE * 2, "autoAccept": True})

    assert set(patched) == CHANNEL
    assert (patched["title"], patched["pricePerPost"], patched["autoAccept"]) == ("Cats weekly", PRICE * 2, True)
    assert (patched["id"], patched["handle"], patched["status"]) == (channel["id"], channel["handle"], "approved")
    assert await api.ok("GET", f"/api/channels/{channel['id']}", publisher) == patched
    later = await api.add_target(advertiser, campaign, channel)
    assert later["price"] == PRICE * 2
    assert (await api.get_target(earlier))["price"] == PRICE
    only_title = await api.ok("PATCH", f"/api/channels/{channel['id']}", publisher, json={"title": "Cats"})
    assert (only_title["title"], only_title["pricePerPost"], only_title["autoAccept"]) == ("Cats", PRICE * 2, True)
    # Auto-accepting now, the channel's next approved post is queued at once.
    await api.deposit(advertiser, FUNDS)
    await api.submit(advertiser, later)
    assert (await api.approve(later["id"])).status_code == 200
    assert (await api.get_target(later))["postJob"]["status"] == "queued"


async def test_another_publisher_cannot_change_a_channel_and_an_empty_change_is_400(api):
    publisher, channel = await listed(api)

    assert_error(await api.call("PATCH", f"/api/channels/{channel['id']}", api.user("publisher"),
                                json={"pricePerPost": 1}), 403)
    assert_error(await api.call("PATCH", f"/api/channels/{channel['id']}", publisher, json={}), 400)
    assert_error(await api.call("PATCH", f"/api/channels/{channel['id']}", publisher,
                                json={"pricePerPost": -1}), 400)
    assert await api.ok("GET", f"/api/channels/{channel['id']}", publisher) == channel


async def test_the_owner_resubmits_a_rejected_channel_and_it_is_pending_again(api):
    publisher, channel = await listed(api, approve=False)
    await api.ok("POST", f"/api/channels/{channel['id']}/reject", api.admin, json={"reason": "blurry logo"})

    assert_error(await api.call("POST", f"/api/channels/{channel['id']}/resubmit", api.user("publisher")), 403)
    resubmitted = await api.ok("POST", f"/api/channels/{channel['id']}/resubmit", publisher)

    assert (resubmitted["id"], resubmitted["status"]) == (channel["id"], "pending")
    assert (await api.ok("GET", f"/api/channels/{channel['id']}", api.admin))["status"] == "pending"


# ---- the owner's answer ----------------------------------------------------------------

async def test_after_approve_a_channel_without_auto_accept_waits_for_its_owner_who_accepts(api):
    order_ = await order(api)
    job = await job_of(api, order_)
    assert set(job) == POST_JOB
    assert (job["id"], job["status"], job["answeredAt"], job["declineReason"]) == \
        (order_.job_id, "awaiting_publisher", None, None)
    assert job["acceptBy"] is not None, f"an awaiting job has no acceptBy: {job}"
    before, after = order_.approved_between
    assert before + dt.timedelta(seconds=ANSWER_S - 1) <= parse_time(job["acceptBy"]) <= \
        after + dt.timedelta(seconds=ANSWER_S + 1), (job, order_.approved_between)
    await still_held(api, order_)

    accepted = await answer(api, order_, "accept")

    assert accepted.status_code == 200, accepted.text
    body = accepted.json()
    assert set(body) == POST_JOB
    assert (body["id"], body["status"]) == (order_.job_id, "queued") and TIMESTAMP.match(body["answeredAt"])
    assert (await target_of(api, order_))["status"] == "approved"
    assert (await job_of(api, order_))["status"] == "queued"
    for action in ("accept", "decline"):
        assert_error(await answer(api, order_, action), 409, code="post_job_not_awaiting")
    await still_held(api, order_)


async def test_a_post_due_before_the_answer_window_ends_is_answered_by_its_time_and_once_accepted_goes_out(api):
    order_ = await order(api, in_s=4)
    job = await job_of(api, order_)
    assert job["status"] == "awaiting_publisher"
    # acceptBy = min(approvedAt + PUBLISHER_ANSWER_S, scheduledAt − PUBLISHER_ANSWER_LEAD_S (0)).
    assert job["acceptBy"] is not None and parse_time(job["acceptBy"]) == parse_time(job["executeAt"]), job

    assert (await answer(api, order_, "accept")).status_code == 200

    target = await until(lambda: target_of(api, order_), lambda t: t["status"] not in ("approved",),
                         what="the accepted post's publication")
    assert target["status"] in ("published", "completed"), target
    posts = await api.sandbox.posts(order_.channel["handle"])
    assert [post["text"] for post in posts] == ["Buy now"]


async def test_a_targets_post_job_shows_the_owners_answer_as_the_channels_post_list_does(api):
    """API.md: PostJob gains acceptBy, answeredAt, declineReason; the
    Target's postJob is a PostJob, the same one the post lists show."""
    waiting, accepted, declined = await order(api), await order(api), await order(api)
    assert (await answer(api, accepted, "accept")).status_code == 200
    assert (await answer(api, declined, "decline", reason="wrong audience")).status_code == 200

    for order_ in (waiting, accepted, declined):
        embedded = (await target_of(api, order_))["postJob"]
        assert set(embedded) == POST_JOB
        assert embedded == await job_of(api, order_), (embedded, await job_of(api, order_))
    assert (await target_of(api, declined))["postJob"]["declineReason"] == "wrong audience"


async def test_the_owner_declines_with_a_reason_and_the_advertiser_gets_the_money_back(api):
    order_ = await order(api)

    declined = await answer(api, order_, "decline", reason="off-topic for my readers")

    assert declined.status_code == 200, declined.text
    body = declined.json()
    assert (body["status"], body["declineReason"]) == ("declined", "off-topic for my readers")
    assert TIMESTAMP.match(body["answeredAt"])
    target = await target_of(api, order_)
    assert (target["status"], target["postJob"]["status"]) == ("declined", "declined")
    await refunded(api, order_)
    for action in ("accept", "decline"):
        assert_error(await answer(api, order_, action), 409, code="post_job_not_awaiting")
    assert (await api.wallet(order_.advertiser))["balance"] == FUNDS


async def test_a_decline_needs_a_reason(api):
    order_ = await order(api)
    refused = await api.call("POST", f"/api/post-jobs/{order_.job_id}/decline", order_.publisher, json={})
    assert_error(refused, 400)
    assert (await job_of(api, order_))["status"] == "awaiting_publisher"


async def test_nobody_but_the_channels_owner_accepts_or_declines(api):
    order_ = await order(api)

    for stranger in (api.user("publisher"), order_.advertiser):
        for action in ("accept", "decline"):
            assert_error(await answer(api, order_, action, stranger), 403)
    assert (await job_of(api, order_))["status"] == "awaiting_publisher"
    await still_held(api, order_)


async def test_the_owners_bot_account_gets_the_order_and_accept_there_queues_the_job_and_shows_the_outcome(api):
    order_ = await order(api)
    message = await order_message(api, order_.account)
    assert message["edited"] is False

    await api.sandbox.press(order_.account["id"], message["message_id"], _buttons(message)["accept"])

    await until(lambda: job_of(api, order_), lambda job: job["status"] != "awaiting_publisher",
                what="the accept by button")
    job = await job_of(api, order_)
    assert job["status"] == "queued" and job["answeredAt"], job
    shown = await until(lambda: message_by_id(api, order_.account, message["message_id"]),
                        lambda m: m["edited"], what="the order message edited with its outcome")
    assert shown["text"] != message["text"] and not _buttons(shown), shown
    await still_held(api, order_)


async def test_decline_by_button_declines_and_refunds(api):
    order_ = await order(api)
    message = await order_message(api, order_.account)

    await api.sandbox.press(order_.account["id"], message["message_id"], _buttons(message)["decline"])

    job = await until(lambda: job_of(api, order_), lambda job: job["status"] != "awaiting_publisher",
                      what="the decline by button")
    assert job["status"] == "declined", job
    await refunded(api, order_)
    shown = await until(lambda: message_by_id(api, order_.account, message["message_id"]),
                        lambda m: m["edited"], what="the order message edited with its outcome")
    assert shown["text"] != message["text"], shown


async def test_a_press_from_an_account_no_longer_the_owners_changes_nothing(api):
    order_ = await order(api)
    old = order_.account
    message = await order_message(api, old)
    # The owner binds another Telegram account: the old one is a stranger to its old order.
    assert (await api.call("DELETE", "/api/me/telegram", order_.publisher)).status_code == 204
    api.telegram.pop(order_.publisher.id, None)
    new = await api.link_telegram(order_.publisher)
    assert new["id"] != old["id"]

    pressed = await api.sandbox.press(old["id"], message["message_id"], _buttons(message)["accept"])
    # Give the bot the time to handle the press: until it answers it, or 5 s.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not any(
            p["callback_query_id"] == pressed["callback_query_id"] and p["answered"]
            for p in await api.sandbox.callbacks(old["id"])):
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.5)

    job = await job_of(api, order_)
    assert (job["status"], job["answeredAt"]) == ("awaiting_publisher", None), job
    await still_held(api, order_)
    assert (await answer(api, order_, "accept")).status_code == 200  # the owner still can


async def test_an_order_nobody_answers_expires_at_accept_by_and_the_advertiser_is_refunded(api):
    order_ = await order(api)
    accept_by = parse_time((await job_of(api, order_))["acceptBy"])

    job = await until(lambda: job_of(api, order_), lambda job: job["status"] != "awaiting_publisher",
                      timeout=ANSWER_S + SETTLE_S, what="the expiry")

    assert job["status"] == "expired", job
    assert dt.datetime.now(dt.timezone.utc) >= accept_by
    assert (await target_of(api, order_))["status"] == "declined"
    await refunded(api, order_)
    late = await answer(api, order_, "accept")
    assert_error(late, 409)
    assert late.json()["error"]["code"] in ("post_job_not_awaiting", "answer_deadline_passed"), late.text


async def test_an_order_unanswered_by_its_post_time_expires_and_nothing_is_posted(api):
    order_ = await order(api, in_s=3)

    job = await until(lambda: job_of(api, order_), lambda job: job["status"] != "awaiting_publisher",
                      what="the expiry at the post's time")

    assert job["status"] == "expired", job
    assert (await target_of(api, order_))["status"] == "declined"
    await refunded(api, order_)
    assert await api.sandbox.posts(order_.channel["handle"]) == []


@pytest.mark.parametrize("seed", [1, 4, 5])  # shuffled to start with a decline, a cancel, an accept
async def test_twenty_concurrent_accepts_declines_and_cancels_end_in_exactly_one_outcome(api, seed):
    order_ = await order(api)
    actions = ["accept"] * 7 + ["decline"] * 7 + ["cancel"] * 6
    random.Random(seed).shuffle(actions)

    async def act(action: str) -> tuple[str, httpx.Response]:
        if action == "cancel":
            return action, await api.call("POST", f"{order_.path}/cancel", order_.advertiser)
        return action, await answer(api, order_, action)
    answers = await asyncio.gather(*(act(a) for a in actions))

    seen = [(action, response.status_code, response.text[:200]) for action, response in answers]
    assert all(status in (200, 400, 409) for _, status, _ in seen), seen
    won = {action: sum(1 for a, status, _ in seen if a == action and status == 200) for action in set(actions)}
    assert all(count <= 1 for count in won.values()), seen
    job = await job_of(api, order_)
    target = await target_of(api, order_)
    assert job["status"] in ("queued", "declined", "cancelled"), (job, seen)
    if job["status"] == "queued":
        assert (target["status"], won) == ("approved", {"accept": 1, "decline": 0, "cancel": 0}), (target, seen)
        await still_held(api, order_)
    elif job["status"] == "declined":
        assert (target["status"], won) == ("declined", {"accept": 0, "decline": 1, "cancel": 0}), (target, seen)
        await refunded(api, order_)
    else:
        assert target["status"] == "cancelled" and won["cancel"] == 1 and won["decline"] == 0, (target, seen)
        await refunded(api, order_)
    wallet = await api.wallet(order_.advertiser)
    assert wallet["balance"] + wallet["held"] == FUNDS, wallet


# ---- ownership checked again before each publication -----------------------------------

@pytest.mark.parametrize("loss,reason", [("member", "channel_ownership_lost"), ("left", "channel_ownership_lost"),
                                         ("unlinked", "channel_ownership_lost"),
                                         ("bot_removed", "channel_cannot_post")])
async def test_an_owner_who_lost_the_chat_before_the_posts_time_gets_no_post_and_the_advertiser_is_refunded(
        api, loss, reason):
    order_ = await order(api, auto_accept=True, in_s=3)
    assert (await job_of(api, order_))["status"] == "queued"
    name = order_.channel["handle"]
    if loss in ("member", "left"):
        await api.sandbox.set_member(name, order_.account["id"], loss)
    elif loss == "unlinked":
        assert (await api.call("DELETE", "/api/me/telegram", order_.publisher)).status_code == 204
        api.telegram.pop(order_.publisher.id, None)
    else:
        await api.sandbox.refuse(name, "not_admin")

    job = await until(lambda: job_of(api, order_), lambda job: job["status"] not in ("queued", "publishing"),
                      what="the check before publication")

    assert job["status"] == "failed" and (job["failureReason"] or "").startswith(reason), job
    assert await api.sandbox.posts(name) == []
    assert (await target_of(api, order_))["status"] == "failed"
    await refunded(api, order_)
    channel = await until(lambda: api.ok("GET", f"/api/channels/{order_.channel['id']}", api.admin),
                          lambda c: c["status"] != "approved", what="the channel's suspension")
    assert channel["status"] == "suspended", channel


async def test_a_suspended_channel_stays_its_owners_listing_until_resubmitted_as_owner_again(api):
    order_ = await order(api, auto_accept=True, in_s=3)
    name = order_.channel["handle"]
    await api.sandbox.set_member(name, order_.account["id"], "member")
    await until(lambda: api.ok("GET", f"/api/channels/{order_.channel['id']}", api.admin),
                lambda c: c["status"] == "suspended", what="the channel's suspension")
    # A live listing still: nobody else lists the chat meanwhile.
    other = api.user("publisher")
    await api.own_channel(other, name, "administrator")
    assert_error(await list_channel(api, other, name), 409, code="channel_already_listed")

    await api.sandbox.set_member(name, order_.account["id"], "creator")
    resubmitted = await api.ok("POST", f"/api/channels/{order_.channel['id']}/resubmit", order_.publisher)
    assert resubmitted["status"] == "pending"


async def test_an_expired_code_binds_nothing_and_the_bot_says_so(api, early_link):
    """The code asked for at the module's start (early_link) is expired now."""
    user, link_ = early_link
    account = await api.sandbox.create_user()
    welcome_text = (await start(api, await api.sandbox.create_user(),
                                (await api.ok("POST", "/api/me/telegram/link", api.user("publisher"), 201))["code"]))["text"]
    await asyncio.sleep(max(0.0, (parse_time(link_["expiresAt"]) - dt.datetime.now(dt.timezone.utc)).total_seconds()) + 0.5)

    refusal = await start(api, account, link_["code"])

    assert refusal["text"] and refusal["text"] != welcome_text, refusal
    assert await telegram_of(api, user) == {"linked": False}
    await link(api, user, account)  # a fresh code binds it


# ---- last: the books agree ---------------------------------------------------------------

async def test_adtech_verify_finds_nothing_wrong_after_all_of_this(adtech_verify):
    deadline = time.monotonic() + SETTLE_S
    while True:
        code, out, err = await adtech_verify()
        if code == 0 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    assert code == 0, out + err
