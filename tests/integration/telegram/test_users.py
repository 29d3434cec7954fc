"""Telegram users in the sandbox: their status in channels (getChatMember,
getChatAdministrators), their private chats with the bot (sendMessage with
inline keyboards, editMessageText, editMessageReplyMarkup) and their button
presses (callback queries, answerCallbackQuery), each answer in Telegram's
shapes, parsed by python-telegram-bot."""
import uuid

import httpx
import pytest
import telegram
from telegram import InlineKeyboardButton, InlineKeyboardMarkup
from telegram import error as tg

ADMIN_RIGHTS = {"can_be_edited", "is_anonymous", "can_manage_chat", "can_delete_messages", "can_manage_video_chats",
                "can_restrict_members", "can_promote_members", "can_change_info", "can_invite_users",
                "can_post_stories", "can_edit_stories", "can_delete_stories", "can_post_messages",
                "can_edit_messages", "can_manage_direct_messages", "can_manage_voice_chats"}


def keyboard(*pairs: tuple[str, str]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[InlineKeyboardButton(text, callback_data=data) for text, data in pairs]])


def name() -> str:
    return f"u_{uuid.uuid4().hex[:12]}"


# ---- users -----------------------------------------------------------------
async def test_a_new_user_has_a_fresh_positive_id_and_the_username_given(sandbox):
    named = await sandbox.create_user(username := name())
    anonymous = await sandbox.create_user()
    assert named["username"] == username and anonymous["username"] is None
    assert named["id"] > 0 and anonymous["id"] > 0 and named["id"] != anonymous["id"]
    assert named["id"] != int(sandbox.token.split(":")[0])
    assert {named["id"], anonymous["id"]} <= {user["id"] for user in await sandbox.users()}


@pytest.mark.parametrize("body, status", [({"username": "a b"}, 400), ({"username": "x" * 33}, 400),
                                          ({"username": "ab"}, 400), ({"username": 5}, 400)])
async def test_a_username_telegram_would_not_take_is_refused(sandbox, body, status):
    answer = await sandbox._http().post("/sandbox/users", json=body)
    assert answer.status_code == status, answer.text


async def test_a_taken_username_is_a_conflict_whatever_its_case(sandbox):
    username = name()
    await sandbox.create_user(username)
    with pytest.raises(httpx.HTTPStatusError) as refused:
        await sandbox.create_user(username.upper())
    assert refused.value.response.status_code == 409


# ---- channel members ---------------------------------------------------------
@pytest.mark.parametrize("status, kind", [("creator", telegram.ChatMemberOwner),
                                          ("administrator", telegram.ChatMemberAdministrator),
                                          ("member", telegram.ChatMemberMember),
                                          ("left", telegram.ChatMemberLeft)])
async def test_get_chat_member_answers_the_users_status_in_telegrams_shape(sandbox, bot, bot_api, handle, status, kind):
    user = await sandbox.create_user(username := name())
    assert await sandbox.set_member(handle, user["id"], status) == {"handle": handle, "user_id": user["id"],
                                                                    "status": status}
    code, raw = await bot_api("getChatMember", chat_id=handle, user_id=user["id"])
    assert code == 200 and raw["result"]["status"] == status
    assert raw["result"]["user"] == {"id": user["id"], "is_bot": False, "first_name": username,
                                     "username": username, "language_code": "en"}
    if status == "administrator":
        assert ADMIN_RIGHTS <= set(raw["result"])
    if status == "creator":
        assert raw["result"]["is_anonymous"] is False
    member = await bot.get_chat_member(handle, user["id"])
    assert type(member) is kind and member.user.id == user["id"] and member.user.username == username


async def test_a_user_never_set_in_a_channel_has_left_it(sandbox, bot, handle):
    user = await sandbox.create_user()
    member = await bot.get_chat_member(handle, user["id"])
    assert type(member) is telegram.ChatMemberLeft and member.user.first_name == "Sandbox user"


async def test_an_id_that_is_no_user_is_user_not_found(bot, bot_api, handle):
    code, raw = await bot_api("getChatMember", chat_id=handle, user_id=424242)
    assert (code, raw["description"]) == (400, "Bad Request: user not found")
    with pytest.raises(tg.BadRequest, match="User not found"):
        await bot.get_chat_member(handle, 424242)


async def test_the_bot_stays_an_administrator_that_can_post_until_the_channel_refuses(sandbox, bot, handle):
    member = await bot.get_chat_member(handle, bot.id)
    assert type(member) is telegram.ChatMemberAdministrator and member.can_post_messages and member.user.is_bot
    await sandbox.refuse(handle, "not_admin")
    assert type(await bot.get_chat_member(handle, bot.id)) is telegram.ChatMemberLeft


async def test_a_new_creator_makes_the_old_one_an_administrator(sandbox, bot, handle):
    first, second = await sandbox.create_user(), await sandbox.create_user()
    await sandbox.set_member(handle, first["id"], "creator")
    await sandbox.set_member(handle, second["id"], "creator")
    assert (await bot.get_chat_member(handle, first["id"])).status == "administrator"
    assert (await bot.get_chat_member(handle, second["id"])).status == "creator"


async def test_get_chat_administrators_lists_the_creator_the_administrators_and_the_bot(sandbox, bot, handle):
    owner, admin, member = [await sandbox.create_user() for _ in range(3)]
    await sandbox.set_member(handle, member["id"], "member")
    await sandbox.set_member(handle, admin["id"], "administrator")
    await sandbox.set_member(handle, owner["id"], "creator")
    admins = await bot.get_chat_administrators(handle)
    assert [(type(a), a.user.id) for a in admins] == [(telegram.ChatMemberOwner, owner["id"]),
                                                      (telegram.ChatMemberAdministrator, admin["id"]),
                                                      (telegram.ChatMemberAdministrator, bot.id)]
    statuses = {m["user_id"]: m["status"] for m in (await sandbox.channel(handle))["members"]}
    assert statuses == {owner["id"]: "creator", admin["id"]: "administrator", member["id"]: "member"}


async def test_setting_a_status_is_refused_for_an_unknown_user_or_status(sandbox, handle):
    user = await sandbox.create_user()
    unknown = await sandbox._http().put(f"/sandbox/channels/{handle}/members/424242", json={"status": "member"})
    bad = await sandbox._http().put(f"/sandbox/channels/{handle}/members/{user['id']}", json={"status": "owner"})
    assert (unknown.status_code, bad.status_code) == (404, 400)


# ---- private chats -----------------------------------------------------------
async def test_a_users_message_reaches_the_bot_with_its_command_entity(sandbox, bot):
    user = await sandbox.create_user(username := name())
    sent = await sandbox.send_message(user["id"], "/start abc_123")
    [update] = await bot.get_updates(offset=sent["update_id"], timeout=0)
    assert update.update_id == sent["update_id"]
    message = update.message
    assert (message.message_id, message.text, message.from_user.id, message.from_user.username) == \
        (sent["message_id"], "/start abc_123", user["id"], username)
    assert message.chat.type == "private" and message.chat.id == user["id"] and message.chat.username == username
    assert [(e.type, e.offset, e.length) for e in message.entities] == [("bot_command", 0, 6)]
    assert message.parse_entity(message.entities[0]) == "/start"


async def test_a_message_without_a_command_has_no_entities(sandbox, bot):
    user = await sandbox.create_user()
    sent = await sandbox.send_message(user["id"], "just words /start")
    [update] = await bot.get_updates(offset=sent["update_id"], timeout=0)
    assert update.message.entities == () and update.message.chat.username is None


async def test_the_bot_cannot_write_first_to_a_user(sandbox, bot, bot_api):
    user = await sandbox.create_user()
    code, raw = await bot_api("sendMessage", chat_id=user["id"], text="hi")
    assert (code, raw["description"]) == (403, "Forbidden: bot can't initiate conversation with a user")
    with pytest.raises(tg.Forbidden):
        await bot.send_message(user["id"], "hi")
    assert await sandbox.messages(user["id"]) == []


async def test_sending_to_an_id_that_is_no_user_is_chat_not_found(bot_api):
    code, raw = await bot_api("sendMessage", chat_id=424242, text="hi")
    assert (code, raw["description"]) == (400, "Bad Request: chat not found")


async def test_the_bots_messages_to_a_user_are_listed_newest_first_with_their_buttons(sandbox, bot, user):
    first = await bot.send_message(user["id"], "Order #1", reply_markup=keyboard(("Accept", "a:1"), ("Decline", "d:1")))
    second = await bot.send_message(user["id"], "Plain")
    assert first.chat.id == user["id"] and first.from_user.id == bot.id
    assert first.reply_markup.inline_keyboard[0][1].callback_data == "d:1"
    listed = await sandbox.messages(user["id"])
    assert [(m["message_id"], m["text"], m["edited"]) for m in listed] == \
        [(second.message_id, "Plain", False), (first.message_id, "Order #1", False)]
    assert listed[1]["buttons"] == [{"text": "Accept", "callback_data": "a:1"},
                                    {"text": "Decline", "callback_data": "d:1"}]
    assert listed[0]["buttons"] == [] and listed[0]["date"] > 0


async def test_edit_message_text_replaces_the_text_and_its_buttons_go_without_markup(sandbox, bot, user):
    sent = await bot.send_message(user["id"], "Order", reply_markup=keyboard(("Accept", "a"), ("Decline", "d")))
    edited = await bot.edit_message_text("Order: now?", chat_id=user["id"], message_id=sent.message_id,
                                         reply_markup=keyboard(("Sure", "s")))
    assert edited.text == "Order: now?" and edited.edit_date is not None
    [shown] = await sandbox.messages(user["id"])
    assert (shown["text"], shown["buttons"], shown["edited"]) == ("Order: now?", [{"text": "Sure", "callback_data": "s"}],
                                                                  True)
    await bot.edit_message_text("Order: accepted", chat_id=user["id"], message_id=sent.message_id)
    [shown] = await sandbox.messages(user["id"])
    assert (shown["text"], shown["buttons"]) == ("Order: accepted", [])


async def test_an_edit_that_changes_nothing_is_not_modified_and_a_missing_message_not_found(bot, bot_api, user):
    sent = await bot.send_message(user["id"], "Same", reply_markup=keyboard(("Go", "g")))
    code, raw = await bot_api("editMessageText", chat_id=user["id"], message_id=sent.message_id, text="Same",
                              reply_markup={"inline_keyboard": [[{"text": "Go", "callback_data": "g"}]]})
    assert code == 400 and raw["description"].startswith("Bad Request: message is not modified: ")
    with pytest.raises(tg.BadRequest, match="not modified"):
        await bot.edit_message_reply_markup(chat_id=user["id"], message_id=sent.message_id,
                                            reply_markup=keyboard(("Go", "g")))
    code, raw = await bot_api("editMessageText", chat_id=user["id"], message_id=sent.message_id + 100, text="x")
    assert (code, raw["description"]) == (400, "Bad Request: message to edit not found")


async def test_edit_message_reply_markup_swaps_or_removes_a_private_messages_buttons(sandbox, bot, user):
    sent = await bot.send_message(user["id"], "Choose", reply_markup=keyboard(("One", "1")))
    changed = await bot.edit_message_reply_markup(chat_id=user["id"], message_id=sent.message_id,
                                                  reply_markup=keyboard(("Two", "2")))
    assert changed.reply_markup.inline_keyboard[0][0].text == "Two"
    await bot.edit_message_reply_markup(chat_id=user["id"], message_id=sent.message_id)
    [shown] = await sandbox.messages(user["id"])
    assert (shown["text"], shown["buttons"], shown["edited"]) == ("Choose", [], True)
    with pytest.raises(tg.BadRequest, match="not modified"):  # no buttons to remove
        await bot.edit_message_reply_markup(chat_id=user["id"], message_id=sent.message_id)


async def test_a_button_with_callback_data_over_64_bytes_is_refused(bot_api, user):
    markup = {"inline_keyboard": [[{"text": "Too long", "callback_data": "x" * 65}]]}
    code, raw = await bot_api("sendMessage", chat_id=user["id"], text="hi", reply_markup=markup)
    assert (code, raw["description"]) == (400, "Bad Request: BUTTON_DATA_INVALID")


async def test_get_chat_of_a_user_is_their_private_chat(bot, user):
    chat = await bot.get_chat(user["id"])
    assert (chat.id, chat.type, chat.username) == (user["id"], "private", user["username"])


# ---- button presses ----------------------------------------------------------
async def test_a_press_reaches_the_bot_as_a_callback_query_with_the_message(sandbox, bot, user):
    sent = await bot.send_message(user["id"], "Order #7", reply_markup=keyboard(("Accept", "accept:7"),
                                                                                ("Decline", "decline:7")))
    pressed = await sandbox.press(user["id"], sent.message_id, "decline:7")
    [update] = await bot.get_updates(offset=pressed["update_id"], timeout=0)
    query = update.callback_query
    assert (query.id, query.data, query.from_user.id) == (pressed["callback_query_id"], "decline:7", user["id"])
    assert query.message.message_id == sent.message_id and query.message.text == "Order #7"
    assert query.message.chat.id == user["id"] and query.message.from_user.id == bot.id
    assert query.message.reply_markup.inline_keyboard[0][0].callback_data == "accept:7"
    assert query.chat_instance


async def test_answer_callback_query_is_recorded_and_a_second_answer_is_refused(sandbox, bot, bot_api, user):
    sent = await bot.send_message(user["id"], "Order", reply_markup=keyboard(("Accept", "a")))
    pressed = await sandbox.press(user["id"], sent.message_id, "a")
    assert await bot.answer_callback_query(pressed["callback_query_id"], text="Accepted") is True
    [press] = await sandbox.callbacks(user["id"])
    assert press == {"callback_query_id": pressed["callback_query_id"], "data": "a", "message_id": sent.message_id,
                     "answered": True, "answer_text": "Accepted", "show_alert": False, "date": press["date"]}
    code, raw = await bot_api("answerCallbackQuery", callback_query_id=pressed["callback_query_id"])
    assert (code, raw["description"]) == \
        (400, "Bad Request: query is too old and response timeout expired or query ID is invalid")
    with pytest.raises(tg.BadRequest):
        await bot.answer_callback_query("123456789")


async def test_a_press_of_a_button_that_is_not_there_is_refused(sandbox, bot, user):
    sent = await bot.send_message(user["id"], "Order", reply_markup=keyboard(("Accept", "a")))
    plain = await bot.send_message(user["id"], "No buttons")
    pending = (await sandbox.updates())["pending"]
    for message_id, data, status in [(sent.message_id, "b", 400), (plain.message_id, "a", 400),
                                     (sent.message_id + 100, "a", 404)]:
        answer = await sandbox._http().post(f"/sandbox/users/{user['id']}/callbacks",
                                            json={"message_id": message_id, "data": data})
        assert answer.status_code == status, (message_id, data, answer.text)
    await bot.edit_message_text("Order: taken", chat_id=user["id"], message_id=sent.message_id)
    gone = await sandbox._http().post(f"/sandbox/users/{user['id']}/callbacks",
                                      json={"message_id": sent.message_id, "data": "a"})
    assert gone.status_code == 400  # its buttons went with the edit
    assert (await sandbox.updates())["pending"] == pending and await sandbox.callbacks(user["id"]) == []


async def test_a_press_in_another_users_chat_is_not_found(sandbox, bot, user):
    sent = await bot.send_message(user["id"], "Order", reply_markup=keyboard(("Accept", "a")))
    other = await sandbox.create_user()
    answer = await sandbox._http().post(f"/sandbox/users/{other['id']}/callbacks",
                                        json={"message_id": sent.message_id, "data": "a"})
    assert answer.status_code == 404
