"""A second client library, aiogram (3.31, Bot API 10.3), drives the
sandbox: every answer the platform's methods get must parse into its
types, and every refusal must raise its exception for that refusal. A
client built from another reading of the Bot API catches a field the
sandbox leaves out that python-telegram-bot happens not to need."""
import uuid

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramBadRequest, TelegramRetryAfter, TelegramUnauthorizedError
from aiogram.types import (CallbackQuery, ChatFullInfo, ChatMemberAdministrator, ChatMemberLeft, ChatMemberMember,
                           ChatMemberOwner, InlineKeyboardButton, InlineKeyboardMarkup, Message, WebhookInfo)

from sandbox.testing import running_sandbox

KINDS = {"creator": ChatMemberOwner, "administrator": ChatMemberAdministrator, "member": ChatMemberMember,
         "left": ChatMemberLeft}
BUTTONS = InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(text="Yes", callback_data="yes:1")]])


@pytest.fixture(scope="module")
def sandbox(quiet_sandbox):
    return quiet_sandbox


def client(sandbox) -> Bot:
    return Bot(sandbox.token, session=AiohttpSession(api=TelegramAPIServer.from_base(sandbox.api_url)))


@pytest.fixture(scope="module")
async def aiobot(sandbox):
    bot = client(sandbox)
    yield bot
    await bot.session.close()


def name() -> str:
    return f"second_{uuid.uuid4().hex[:12]}"


async def test_aiogram_reads_the_bot_a_channel_and_the_webhook(aiobot, sandbox):
    me = await aiobot.get_me()
    assert me.is_bot and me.id == int(sandbox.token.split(":")[0]) and me.username == "adtech_sandbox_bot"
    chat = await aiobot.get_chat(f"@{name()}")
    assert isinstance(chat, ChatFullInfo) and chat.type == "channel" and str(chat.id).startswith("-100")
    assert isinstance(await aiobot.get_webhook_info(), WebhookInfo)
    assert await aiobot.delete_webhook() is True


@pytest.mark.parametrize("status", sorted(KINDS))
async def test_aiogram_reads_each_kind_of_channel_member(aiobot, sandbox, status):
    handle = f"@{name()}"
    user = await sandbox.create_user(name())
    await sandbox.set_member(handle, user["id"], status)
    member = await aiobot.get_chat_member(handle, user["id"])
    assert type(member) is KINDS[status] and member.user.id == user["id"]


async def test_aiogram_reads_the_administrators_the_bot_among_them(aiobot, sandbox):
    handle = f"@{name()}"
    owner, admin = await sandbox.create_user(name()), await sandbox.create_user(name())
    await sandbox.set_member(handle, owner["id"], "creator")
    await sandbox.set_member(handle, admin["id"], "administrator")
    admins = await aiobot.get_chat_administrators(handle)
    assert [(type(a), a.user.id) for a in admins] == [(ChatMemberOwner, owner["id"]),
                                                      (ChatMemberAdministrator, admin["id"]),
                                                      (ChatMemberAdministrator, aiobot.id)]
    bot = await aiobot.get_chat_member(handle, aiobot.id)
    assert bot.can_post_messages is True and bot.can_send_welcome_messages is True


async def test_aiogram_reads_posts_with_formatting_photos_and_button_edits(aiobot):
    chat_id = (await aiobot.get_chat(f"@{name()}")).id
    post = await aiobot.send_message(chat_id, "<b>Sale</b> 😀 <i>today</i>", parse_mode="HTML", reply_markup=BUTTONS)
    assert isinstance(post, Message) and post.text == "Sale 😀 today"
    assert [(e.type, e.offset, e.length) for e in post.entities] == [("bold", 0, 4), ("italic", 8, 5)]
    assert [(b.text, b.callback_data) for b in post.reply_markup.inline_keyboard[0]] == [("Yes", "yes:1")]
    photo = await aiobot.send_photo(chat_id, "https://example.com/a.jpg", caption="*Look*", parse_mode="MarkdownV2")
    assert photo.photo and photo.caption == "Look" and photo.caption_entities[0].type == "bold"
    stripped = await aiobot.edit_message_reply_markup(chat_id=chat_id, message_id=post.message_id)
    assert isinstance(stripped, Message) and stripped.reply_markup is None and stripped.edit_date
    assert await aiobot.delete_message(chat_id, photo.message_id) is True


async def test_aiogram_reads_private_messages_updates_and_presses(aiobot, sandbox):
    user = await sandbox.create_user(name())
    await sandbox.send_message(user["id"], "/start hello")
    sent = await aiobot.send_message(user["id"], "Accept?", reply_markup=BUTTONS)
    edited = await aiobot.edit_message_text("Accept <b>now</b>?", chat_id=user["id"], message_id=sent.message_id,
                                            parse_mode="HTML", reply_markup=BUTTONS)
    assert isinstance(edited, Message) and edited.entities[0].type == "bold"
    press = await sandbox.press(user["id"], sent.message_id, "yes:1")
    updates = await aiobot.get_updates(allowed_updates=["message", "callback_query"])
    queries = [update.callback_query for update in updates if update.callback_query]
    assert [update.message.text for update in updates if update.message][-1] == "/start hello"
    assert isinstance(queries[-1], CallbackQuery) and queries[-1].data == "yes:1"
    assert queries[-1].message.message_id == sent.message_id
    assert await aiobot.answer_callback_query(press["callback_query_id"], text="Done") is True
    await aiobot.get_updates(offset=updates[-1].update_id + 1)


@pytest.mark.parametrize("call, words", [
    (lambda bot: bot.get_chat("@ab"), "chat not found"),
    (lambda bot: bot.send_message("@second_parse_test", "<b>open", parse_mode="HTML"),
     "can't parse entities: Can't find end tag corresponding to start tag \"b\""),
    (lambda bot: bot.send_message("@second_parse_test", "x", parse_mode="Textile"), "unsupported parse_mode"),
])
async def test_aiogram_raises_its_bad_request_with_telegrams_words(aiobot, call, words):
    with pytest.raises(TelegramBadRequest) as refused:
        await call(aiobot)
    assert words in refused.value.message


async def test_aiogram_meets_close_too_early_and_a_logged_out_bot_as_telegram_answers_them(tmp_path):
    async with running_sandbox(tmp_path) as fresh:
        bot = client(fresh)
        try:
            with pytest.raises(TelegramRetryAfter):
                await bot.close()
            await fresh.advance_clock(601)
            assert await bot.close() is True
            assert await bot.log_out() is True
            with pytest.raises(TelegramUnauthorizedError):
                await bot.get_me()
        finally:
            await bot.session.close()
