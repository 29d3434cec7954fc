"""E.1 of the seed's test plan: the happy path, step by step over HTTP, each
answer checked against API.md. It starts as a newcomer starts: the publisher
links a Telegram account through the platform's bot (the stack's Bot API
sandbox stands in for Telegram) and lists a chat it owns there."""
import asyncio
import re
import time
import uuid

from tests.e2e.client import assert_error, from_now, handle, parse_time

PRICE = 2_500
FUNDS = 10_000


async def _in_queue(api, target_id: str) -> dict | None:
    cursor = None
    while True:
        params = {"limit": 200, **({"cursor": cursor} if cursor else {})}
        page = await api.ok("GET", "/api/moderation/queue", api.admin, params=params)
        for item in page["items"]:
            if item["id"] == target_id:
                return item
        cursor = page["nextCursor"]
        if not cursor:
            return None


async def _linked(api, user, timeout: float = 15.0) -> dict:
    deadline = time.monotonic() + timeout
    while not (account := await api.ok("GET", "/api/me/telegram", user))["linked"]:
        assert time.monotonic() < deadline, f"the bot did not link {user.id} within {timeout}s: {account}"
        await asyncio.sleep(0.05)
    return account


async def test_happy_path_from_channel_to_held_escrow_and_post_job(api):
    admin, publisher, advertiser = api.admin, api.user("publisher"), api.user("advertiser")
    name = handle()
    listing = {"title": "Morning digest", "handle": name, "pricePerPost": PRICE, "autoAccept": True}

    # 1. Before linking a Telegram account, the publisher cannot list a channel.
    assert await api.ok("GET", "/api/me/telegram", publisher) == {"linked": False}
    assert_error(await api.call("POST", "/api/channels", publisher, json=listing), 400, code="telegram_not_linked")

    # 2. The publisher asks for a link and presses Start in the bot: `/start <code>`
    #    from their Telegram account binds it.
    account = await api.sandbox.create_user(f"e1_{uuid.uuid4().hex[:8]}")
    link = await api.ok("POST", "/api/me/telegram/link", publisher, 201)
    assert re.fullmatch(r"[A-Za-z0-9_-]{16,64}", link["code"])
    assert re.fullmatch(r"https://t\.me/[A-Za-z0-9_]+\?start=" + re.escape(link["code"]), link["startLink"])
    await api.sandbox.send_message(account["id"], f"/start {link['code']}")
    linked = await _linked(api, publisher)
    assert (linked["linked"], linked["telegramUserId"], linked["username"]) == (True, account["id"], account["username"])
    assert parse_time(linked["linkedAt"])
    api.telegram[publisher.id] = account

    # 3. A mere member of the chat cannot list it.
    await api.sandbox.set_member(name, account["id"], "member")
    assert_error(await api.call("POST", "/api/channels", publisher, json=listing), 403, code="not_channel_admin")

    # 4-5. As the chat's creator the publisher lists it (auto-accepting its
    #      orders); an admin approves it.
    await api.sandbox.set_member(name, account["id"], "creator")
    channel = await api.ok("POST", "/api/channels", publisher, 201, json=listing)
    assert (channel["status"], channel["ownerId"], channel["pricePerPost"]) == ("pending", publisher.id, PRICE)
    assert channel["autoAccept"] is True
    assert str(channel["telegramChatId"]) == str((await api.sandbox.channel(name))["chat_id"])
    channel = await api.ok("POST", f"/api/channels/{channel['id']}/approve", admin)
    assert channel["status"] == "approved"

    # 6. The advertiser opens their wallet by looking at it; the admin funds
    #    it (idempotently).
    opened = await api.ok("GET", "/api/wallet", advertiser)
    assert opened == {"userId": advertiser.id, "currency": "USD", "balance": 0, "held": 0, "pendingPayout": 0}
    key = uuid.uuid4().hex
    funded = await api.ok("POST", f"/api/wallets/{advertiser.id}/deposits", admin, 201,
                          json={"amount": FUNDS, "reference": "e1"}, headers={"Idempotency-Key": key})
    assert set(funded) == {"transactionId", "wallet"}
    assert funded["wallet"] == {"userId": advertiser.id, "currency": "USD", "balance": FUNDS, "held": 0, "pendingPayout": 0}

    # 7-9. The advertiser creates a draft campaign, a creative, a target priced by the channel.
    campaign = await api.ok("POST", "/api/campaigns", advertiser, 201, json={"name": "Spring launch"})
    assert (campaign["status"], campaign["advertiserId"], campaign["creatives"]) == ("draft", advertiser.id, [])
    creative = await api.ok("POST", f"/api/campaigns/{campaign['id']}/creatives", advertiser, 201,
                            json={"text": "Fresh coffee every morning"})
    assert set(creative) == {"id", "text", "mediaUrl"} and creative["text"] == "Fresh coffee every morning"
    scheduled_at = from_now(days=2)
    target = await api.ok("POST", f"/api/campaigns/{campaign['id']}/targets", advertiser, 201,
                          json={"channelId": channel["id"], "scheduledAt": scheduled_at})
    assert (target["status"], target["price"], target["currency"]) == ("pending", PRICE, channel["currency"])
    assert target["postJob"] is None
    target_path = f"/api/campaigns/{campaign['id']}/targets/{target['id']}"

    # 10. Submitting while the campaign is a draft is refused with the seed's message.
    refused = await api.call("POST", f"{target_path}/submit", advertiser)
    assert_error(refused, 400, "Campaign must be active to submit targets (current status: draft)")

    # 11-12. Activate, then submit.
    campaign = await api.ok("POST", f"/api/campaigns/{campaign['id']}/activate", advertiser)
    assert campaign["status"] == "active"
    target = await api.ok("POST", f"{target_path}/submit", advertiser)
    assert target["status"] == "submitted"

    # 13. The admin sees it in the moderation queue.
    queued = await _in_queue(api, target["id"])
    assert queued is not None and queued["status"] == "submitted" and queued["price"] == PRICE

    # 14. Approve: 200 with the post job and the escrow.
    response = await api.approve(target["id"])
    assert response.status_code == 200, response.text
    approved = response.json()
    assert set(approved) == {"ok", "targetId", "status", "postJobId", "escrowId", "alreadyApproved"}
    assert (approved["ok"], approved["targetId"], approved["status"], approved["alreadyApproved"]) == \
        (True, target["id"], "approved", False)

    # 15. The target is approved, with its post job at the scheduled time.
    target = await api.ok("GET", target_path, advertiser)
    assert target["status"] == "approved" and target["moderatedBy"] == admin.id and target["moderatedAt"]
    assert target["postJob"]["id"] == approved["postJobId"] and target["postJob"]["status"] == "queued"
    assert parse_time(target["postJob"]["executeAt"]) == parse_time(scheduled_at)

    # 16. The escrow is held for the price, between this advertiser and publisher.
    escrow = await api.ok("GET", f"/api/escrows/{target['id']}", admin)
    assert (escrow["id"], escrow["targetId"], escrow["status"], escrow["amount"], escrow["currency"]) == \
        (approved["escrowId"], target["id"], "held", PRICE, "USD")
    assert (escrow["advertiserId"], escrow["publisherId"]) == (advertiser.id, publisher.id)
    assert await api.ok("GET", f"/api/escrows/{target['id']}", advertiser) == escrow
    assert await api.ok("GET", f"/api/escrows/{target['id']}", publisher) == escrow

    # 17. The money moved from spendable balance to held.
    assert await api.ok("GET", "/api/wallet", advertiser) == \
        {"userId": advertiser.id, "currency": "USD", "balance": FUNDS - PRICE, "held": PRICE, "pendingPayout": 0}
    kinds = [(e["kind"], e["amount"], e["balanceAfter"]) for e in await api.ledger(advertiser)]
    assert kinds == [("escrow_hold", -PRICE, FUNDS - PRICE), ("deposit", FUNDS, FUNDS)]

    # 18. Approving again answers the same ids, flagged as already approved; nothing moves.
    again = await api.approve(target["id"])
    assert again.status_code == 200, again.text
    assert again.json() == {**approved, "alreadyApproved": True}
    assert (await api.wallet(advertiser))["held"] == PRICE

    # 19. The decision is visible to moderators; the target left the queue.
    decision = await api.ok("GET", f"/api/moderation/targets/{target['id']}", admin)
    assert (decision["targetId"], decision["decision"], decision["status"]) == (target["id"], "approve", "approved")
    assert (decision["postJobId"], decision["escrowId"]) == (approved["postJobId"], approved["escrowId"])
    assert await _in_queue(api, target["id"]) is None


async def test_deposit_repeated_with_its_key_answers_200_with_the_same_transaction_and_no_second_credit(api):
    advertiser, key = api.user("advertiser"), uuid.uuid4().hex
    path, headers = f"/api/wallets/{advertiser.id}/deposits", {"Idempotency-Key": key}
    await api.open_wallet(advertiser)

    first = await api.ok("POST", path, api.admin, 201, json={"amount": 700}, headers=headers)
    again = await api.ok("POST", path, api.admin, 200, json={"amount": 700}, headers=headers)

    assert again["transactionId"] == first["transactionId"]
    assert (await api.wallet(advertiser))["balance"] == 700
