"""The bot's standing in a channel as Telegram shows it: dismissed from its
administrators (refuse mode not_admin) it is no longer in the channel;
an administrator without can_post_messages (no_post_rights) sees and
edits but cannot post. The adapter refuses either definitely."""
import sqlite3

import pytest
import telegram
from telegram import error as tg

from sandbox.store import SCHEMA, Store
from services.campaigns.telegram import ChannelRefused, classify

NOT_MEMBER = "Forbidden: bot is not a member of the channel chat"
NO_RIGHTS = "Bad Request: need administrator rights in the channel chat"
INACCESSIBLE = "Bad Request: member list is inaccessible"


async def test_a_dismissed_bot_has_left_cannot_see_the_members_and_may_not_post(sandbox, bot, bot_api, handle):
    owner = await sandbox.create_user()
    await sandbox.set_member(handle, owner["id"], "creator")
    code, sent = await bot_api("sendMessage", chat_id=handle, text="before")
    await sandbox.refuse(handle, "not_admin")
    assert (await bot_api("getChat", chat_id=handle))[0] == 200  # a public channel is still there to read
    assert type(await bot.get_chat_member(handle, bot.id)) is telegram.ChatMemberLeft
    for method, params in [("getChatMember", {"user_id": owner["id"]}), ("getChatAdministrators", {})]:
        code, body = await bot_api(method, chat_id=handle, **params)
        assert (code, body["description"]) == (400, INACCESSIBLE), method
    message_id = sent["result"]["message_id"]
    for method, params in [("sendMessage", {"text": "after"}), ("sendPhoto", {"photo": "https://example.com/a.jpg"}),
                           ("editMessageReplyMarkup", {"message_id": message_id}),
                           ("deleteMessage", {"message_id": message_id})]:
        code, body = await bot_api(method, chat_id=handle, **params)
        assert (code, body) == (403, {"ok": False, "error_code": 403, "description": NOT_MEMBER}), method
    assert [post["text"] for post in await sandbox.posts(handle)] == ["before"]


async def test_an_administrator_without_post_rights_can_edit_and_delete_but_not_post(sandbox, bot, bot_api, handle):
    code, sent = await bot_api("sendMessage", chat_id=handle, text="before")
    await sandbox.refuse(handle, "no_post_rights")
    member = await bot.get_chat_member(handle, bot.id)
    assert type(member) is telegram.ChatMemberAdministrator
    assert member.can_post_messages is False and member.can_edit_messages and member.can_delete_messages
    [listed] = [admin for admin in await bot.get_chat_administrators(handle) if admin.user.id == bot.id]
    assert listed.can_post_messages is False
    for method, params in [("sendMessage", {"text": "after"}), ("sendPhoto", {"photo": "https://example.com/a.jpg"})]:
        code, body = await bot_api(method, chat_id=handle, **params)
        assert (code, body) == (400, {"ok": False, "error_code": 400, "description": NO_RIGHTS}), method
    message_id = sent["result"]["message_id"]
    code, body = await bot_api("editMessageReplyMarkup", chat_id=handle, message_id=message_id)
    assert body["description"].startswith("Bad Request: message is not modified")  # the probe still sees the post
    assert await bot_api("deleteMessage", chat_id=handle, message_id=message_id) == (200, {"ok": True, "result": True})


@pytest.mark.parametrize("mode", ["not_admin", "no_post_rights"])
async def test_the_adapter_refuses_a_channel_where_the_bot_cannot_post(sandbox, channels, handle, mode):
    await sandbox.refuse(handle, mode)
    with pytest.raises(ChannelRefused) as refused:
        await channels.chat_for_posting(handle)
    assert refused.value.message == f"the bot is not an administrator of {handle} that can post messages"


def test_each_way_of_not_being_able_to_post_is_a_definite_refusal():
    for error in (tg.Forbidden(NOT_MEMBER), tg.BadRequest(NO_RIGHTS), tg.BadRequest(INACCESSIBLE)):
        assert type(classify(error)) is ChannelRefused, error


def test_a_database_an_older_sandbox_made_takes_the_new_mode_and_keeps_its_rows(tmp_path):
    path = tmp_path / "sandbox.sqlite3"
    old = sqlite3.connect(path, isolation_level=None)
    old.executescript(SCHEMA.replace("'not_admin', 'no_post_rights', 'blocked'", "'not_admin', 'blocked'"))
    old.execute("INSERT INTO channel (username, title, chat_id, refuse, last_message_id)"
                " VALUES ('olden', 'Olden', -1001234567890, 'blocked', 1)")
    old.execute("INSERT INTO post (chat_id, message_id, text, date) VALUES (-1001234567890, 1, 'kept', 1)")
    old.close()
    store = Store(path)
    try:
        changed = store.set_refuse("@olden", "no_post_rights")
        assert changed.refuse == "no_post_rights" and changed.chat_id == -1001234567890
        assert [post.text for post in store.posts(changed.chat_id)] == ["kept"]
        assert store.add_post(changed.chat_id, "next", None).message_id == 2
        store.reset()  # the posts still cascade from their channel
        assert store.channels() == [] and store.db.execute("SELECT count(*) FROM post").fetchone() == (0,)
        assert store.db.execute("PRAGMA foreign_key_check").fetchall() == []
    finally:
        store.close()
