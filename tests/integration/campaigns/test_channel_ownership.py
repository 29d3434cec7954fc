"""Who may list a channel, asked of Telegram (the session's sandbox): only a
publisher whose bound account is the chat's creator or an administrator,
with the bot able to post, and only once per chat and per handle in any case
(docs/design.md, "Listing a channel")."""
import asyncio
import datetime as dt
import uuid

import grpc
import sqlalchemy as sa

from adtech.campaigns.v1 import campaigns_pb2 as pb
from common.reasons import Reason
from common.timestamps import utcnow
from services.campaigns.usecases.conversations import Conversations, Incoming
from tests import harness
from tests.integration.campaigns.conftest import admin, publisher


def new_handle() -> str:
    return f"@own_{uuid.uuid4().hex[:10]}"


def listing(handle: str, **fields) -> pb.CreateChannelRequest:
    return pb.CreateChannelRequest(title="Cats daily", handle=handle, price_per_post=1000, **fields)


async def test_a_publisher_without_a_linked_telegram_account_cannot_list(campaigns):
    refusal = await campaigns.refusal("CreateChannel", listing(new_handle()), publisher())
    assert (refusal.code, refusal.reason) == (grpc.StatusCode.FAILED_PRECONDITION, Reason.TELEGRAM_NOT_LINKED)


async def test_the_creator_or_an_administrator_lists_and_the_listing_records_the_chat(campaigns):
    for status in ("creator", "administrator"):
        owner, handle = publisher(), new_handle()
        await campaigns.owners.own(owner, handle, status)
        channel = (await campaigns.call("CreateChannel", listing(handle), owner)).channel
        assert (channel.status, channel.auto_accept) == ("pending", False)
        assert channel.chat_id < 0 and channel.HasField("verified_at")


async def test_a_member_or_a_stranger_to_the_chat_is_not_its_admin(campaigns):
    for status in ("member", "left"):
        impostor, handle = publisher(), new_handle()
        await campaigns.owners.own(impostor, handle, status)
        refusal = await campaigns.refusal("CreateChannel", listing(handle), impostor)
        assert (refusal.code, refusal.reason) == (grpc.StatusCode.PERMISSION_DENIED, Reason.NOT_CHANNEL_ADMIN)


async def test_an_unknown_chat_and_a_chat_the_bot_cannot_post_in_are_refused(campaigns):
    sandbox = harness.sandbox()
    owner = publisher()
    for mode, reason in (("not_found", Reason.CHANNEL_NOT_FOUND), ("not_admin", Reason.CHANNEL_CANNOT_POST)):
        handle = new_handle()
        await campaigns.owners.own(owner, handle)
        await sandbox.refuse(handle, mode)
        try:
            refusal = await campaigns.refusal("CreateChannel", listing(handle), owner)
        finally:
            await sandbox.refuse(handle, "off")
        assert (refusal.code, refusal.reason) == (grpc.StatusCode.FAILED_PRECONDITION, reason)


async def test_a_chat_is_listed_once_by_any_case_of_its_handle_even_by_another_administrator(campaigns):
    first, second, handle = publisher(), publisher(), new_handle()
    await campaigns.owners.own(first, handle)
    await campaigns.owners.own(second, handle, "administrator")
    await campaigns.call("CreateChannel", listing(handle), first)
    for spelled in (handle, handle.upper(), "@" + handle[1:].capitalize()):
        refusal = await campaigns.refusal("CreateChannel", listing(spelled), second)
        assert (refusal.code, refusal.reason) == (grpc.StatusCode.ALREADY_EXISTS, Reason.CHANNEL_ALREADY_LISTED)
    assert await campaigns.scalar("SELECT count(*) FROM channels WHERE lower(handle) = lower(:h)", h=handle) == 1


async def test_ten_administrators_listing_one_chat_at_once_make_exactly_one_listing(campaigns):
    handle, admins = new_handle(), [publisher() for _ in range(10)]
    for each in admins:
        await campaigns.owners.own(each, handle, "administrator")
    outcomes = await asyncio.gather(*(campaigns.call("CreateChannel", listing(handle), each) for each in admins),
                                    return_exceptions=True)
    made = [o for o in outcomes if not isinstance(o, BaseException)]
    refused = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(made) == 1
    assert all(isinstance(o, grpc.aio.AioRpcError) and o.code() == grpc.StatusCode.ALREADY_EXISTS for o in refused)


async def test_a_rejected_listing_frees_the_chat_and_its_owner_may_resubmit_it(campaigns):
    owner, other, handle = publisher(), publisher(), new_handle()
    await campaigns.owners.own(owner, handle)
    channel = (await campaigns.call("CreateChannel", listing(handle), owner)).channel
    await campaigns.call("RejectChannel", pb.RejectChannelRequest(channel_id=channel.id, reason="blurry logo"), admin())
    await campaigns.owners.own(other, handle, "administrator")
    relisted = (await campaigns.call("CreateChannel", listing(handle), other)).channel
    assert relisted.id != channel.id
    refusal = await campaigns.refusal("ResubmitChannel", pb.ResubmitChannelRequest(channel_id=channel.id), owner)
    assert (refusal.code, refusal.reason) == (grpc.StatusCode.ALREADY_EXISTS, Reason.CHANNEL_ALREADY_LISTED)
    await campaigns.call("RejectChannel", pb.RejectChannelRequest(channel_id=relisted.id, reason="no"), admin())
    back = (await campaigns.call("ResubmitChannel", pb.ResubmitChannelRequest(channel_id=channel.id), owner)).channel
    assert (back.status, back.rejection_reason) == ("pending", "")


async def test_resubmitting_proves_ownership_again(campaigns):
    owner, handle = publisher(), new_handle()
    account = await campaigns.owners.own(owner, handle)
    channel = (await campaigns.call("CreateChannel", listing(handle), owner)).channel
    await campaigns.call("RejectChannel", pb.RejectChannelRequest(channel_id=channel.id, reason="no"), admin())
    await harness.sandbox().set_member(handle, account["id"], "member")
    refusal = await campaigns.refusal("ResubmitChannel", pb.ResubmitChannelRequest(channel_id=channel.id), owner)
    assert refusal.reason == Reason.NOT_CHANNEL_ADMIN
    refusal = await campaigns.refusal("ResubmitChannel", pb.ResubmitChannelRequest(channel_id=channel.id), publisher())
    assert refusal.code == grpc.StatusCode.PERMISSION_DENIED


async def test_the_owner_changes_title_price_and_auto_accept_and_nobody_else_does(campaigns):
    owner = publisher()
    channel = await campaigns.channel(owner, auto_accept=False)
    changed = (await campaigns.call("UpdateChannel", pb.UpdateChannelRequest(
        channel_id=channel.id, price_per_post=4321, auto_accept=True), owner)).channel
    assert (changed.title, changed.price_per_post, changed.auto_accept) == (channel.title, 4321, True)
    renamed = (await campaigns.call("UpdateChannel", pb.UpdateChannelRequest(channel_id=channel.id, title="New"),
                                    owner)).channel
    assert (renamed.title, renamed.price_per_post) == ("New", 4321)
    refusal = await campaigns.refusal("UpdateChannel", pb.UpdateChannelRequest(channel_id=channel.id, title="Mine"),
                                      publisher())
    assert refusal.code == grpc.StatusCode.PERMISSION_DENIED
    refusal = await campaigns.refusal("UpdateChannel", pb.UpdateChannelRequest(channel_id=channel.id), owner)
    assert refusal.code == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_currency_other_than_the_platforms_is_refused(campaigns):
    owner, handle = publisher(), new_handle()
    await campaigns.owners.own(owner, handle)
    refusal = await campaigns.refusal("CreateChannel", listing(handle, currency="EUR"), owner)
    assert (refusal.code, refusal.reason) == (grpc.StatusCode.FAILED_PRECONDITION, Reason.CURRENCY_NOT_SUPPORTED)
    assert "USD" in refusal.message


# ---- Telegram accounts

async def start(campaigns, telegram_user_id: int, code: str, *, now=None) -> str:
    """`/start <code>` from that Telegram user, as the bot handles it."""
    answer = await Conversations(campaigns.servicer.accounts.db).handle(
        Incoming(10**13 + uuid.uuid4().int % 10**12, "message", telegram_user_id, None, f"/start {code}"),
        now=now or utcnow())
    return answer["text"]


async def code_for(campaigns, actor) -> pb.CreateTelegramLinkResponse:
    return await campaigns.call("CreateTelegramLink", pb.CreateTelegramLinkRequest(), actor)


async def test_a_code_binds_once_and_not_after_it_expires(campaigns):
    alice, bob = publisher(), publisher()
    link = await code_for(campaigns, alice)
    assert "now linked" in await start(campaigns, 111_000_001, link.code)
    assert "used already" in await start(campaigns, 111_000_002, link.code)
    late = await code_for(campaigns, bob)
    expired = late.expires_at.ToDatetime(dt.timezone.utc) + dt.timedelta(seconds=1)
    assert "expired" in await start(campaigns, 111_000_003, late.code, now=expired)
    assert not (await campaigns.call("GetTelegramAccount", pb.GetTelegramAccountRequest(), bob)).linked
    assert "not valid" in await start(campaigns, 111_000_003, "no-such-code-at-all-here")


async def test_one_telegram_account_belongs_to_one_user_and_a_user_may_switch_accounts(campaigns):
    alice, bob = publisher(), publisher()
    assert "now linked" in await start(campaigns, 222_000_001, (await code_for(campaigns, alice)).code)
    assert "another platform user" in await start(campaigns, 222_000_001, (await code_for(campaigns, bob)).code)
    assert not (await campaigns.call("GetTelegramAccount", pb.GetTelegramAccountRequest(), bob)).linked
    assert "now linked" in await start(campaigns, 222_000_002, (await code_for(campaigns, alice)).code)
    account = await campaigns.call("GetTelegramAccount", pb.GetTelegramAccountRequest(), alice)
    assert (account.linked, account.telegram_user_id) == (True, 222_000_002)
    # The account alice left is free again.
    assert "now linked" in await start(campaigns, 222_000_001, (await code_for(campaigns, bob)).code)
    await campaigns.call("UnlinkTelegramAccount", pb.UnlinkTelegramAccountRequest(), alice)
    assert not (await campaigns.call("GetTelegramAccount", pb.GetTelegramAccountRequest(), alice)).linked


async def test_a_suspended_listing_holds_its_chat_until_an_admin_rejects_it(campaigns):
    first, second = publisher(), publisher()
    channel = await campaigns.channel(first)
    async with campaigns.engine.begin() as conn:  # its owner lost the chat at a publication
        await conn.execute(sa.text("UPDATE channels SET status = 'suspended' WHERE id = :id"), {"id": channel.id})
    await campaigns.owners.own(second, channel.handle, "administrator")
    refusal = await campaigns.refusal("CreateChannel", listing(channel.handle.upper()), second)
    assert refusal.reason == Reason.CHANNEL_ALREADY_LISTED
    rejected = (await campaigns.call("RejectChannel", pb.RejectChannelRequest(
        channel_id=channel.id, reason="its owner lost the chat"), admin())).channel
    assert rejected.status == "rejected"
    relisted = (await campaigns.call("CreateChannel", listing(channel.handle.upper()), second)).channel
    assert relisted.status == "pending"


async def test_a_forged_button_or_a_garbled_code_is_answered_and_blocks_nothing(campaigns):
    conversations = Conversations(campaigns.servicer.accounts.db)
    forged = [("callback_query", "accept:" + "0" * 36), ("callback_query", "decline:not-a-job"),
              ("callback_query", "x" * 64), ("message", "/start " + "ab\x00" * 8), ("message", "hello")]
    for kind, text in forged:
        update_id = 10**13 + uuid.uuid4().int % 10**12
        answer = await conversations.handle(Incoming(update_id, kind, 333_000_001, None, text, "query-1"), now=utcnow())
        assert answer and answer["text"], (kind, text)
        assert await campaigns.scalar("SELECT count(*) FROM bot_updates WHERE update_id = :u", u=update_id) == 1
