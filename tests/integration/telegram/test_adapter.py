"""The channel adapter (services/campaigns/telegram.py) over real HTTP
against the Bot API sandbox: python-telegram-bot parses the sandbox's
answers and raises its real exceptions, which the adapter classifies."""
import logging

import pytest
from telegram import error as tg

from sandbox import new_token
from services.campaigns.telegram import (CAPTION_LIMIT, ChannelRefused, ChatNotFound, Posted, TelegramChannels,
                                         TokenRejected, TransientChannelError, classify)


async def test_chat_for_posting_returns_the_channel_id_when_the_bot_can_post(channels, handle):
    chat_id = await channels.chat_for_posting(handle)
    assert chat_id < -1_000_000_000_000
    assert await channels.chat_for_posting(handle) == chat_id  # stable per handle


async def test_a_missing_channel_is_refused_as_not_found(channels, sandbox, handle):
    await sandbox.refuse(handle, "not_found")
    with pytest.raises(ChannelRefused) as refused:
        await channels.chat_for_posting(handle)
    assert refused.value.message == f"channel {handle} not found"


async def test_a_channel_where_the_bot_is_not_admin_is_refused_with_that_reason(channels, sandbox, handle):
    await sandbox.refuse(handle, "not_admin")
    with pytest.raises(ChannelRefused) as refused:
        await channels.chat_for_posting(handle)
    assert refused.value.message == f"the bot is not an administrator of {handle} that can post messages"


async def test_a_channel_that_kicked_the_bot_is_refused_as_not_admin_in_telegrams_words(channels, sandbox, handle):
    await sandbox.refuse(handle, "blocked")
    with pytest.raises(ChannelRefused) as refused:
        await channels.chat_for_posting(handle)
    assert refused.value.message.startswith(f"the bot is not an administrator of {handle} that can post messages")
    assert "kicked" in refused.value.message


async def test_a_refusal_switched_off_lets_the_channel_through_again(channels, sandbox, handle):
    await sandbox.refuse(handle, "not_admin")
    with pytest.raises(ChannelRefused):
        await channels.chat_for_posting(handle)
    await sandbox.refuse(handle, "off")
    assert await channels.chat_for_posting(handle) < 0


async def test_publish_text_posts_one_message_and_links_it(channels, sandbox, handle):
    chat_id = await channels.chat_for_posting(handle)
    posted = await channels.publish(chat_id, handle, "Spring sale, 20% off", None)
    assert posted == Posted(message_id=1, url=f"https://t.me/{handle[1:]}/1")
    [post] = await sandbox.posts(handle)
    assert (post["message_id"], post["text"], post["media_url"], post["photo"], post["deleted"]) == \
        (1, "Spring sale, 20% off", None, False, False)


async def test_message_ids_increase_per_channel(channels, handle):
    chat_id = await channels.chat_for_posting(handle)
    ids = [(await channels.publish(chat_id, handle, f"post {n}", None)).message_id for n in range(3)]
    assert ids == [1, 2, 3]


async def test_publish_with_a_photo_sends_it_with_the_text_as_caption(channels, sandbox, handle):
    chat_id = await channels.chat_for_posting(handle)
    posted = await channels.publish(chat_id, handle, "With a picture", "https://example.com/a.jpg")
    [post] = await sandbox.posts(handle)
    assert post["message_id"] == posted.message_id
    assert (post["text"], post["media_url"], post["photo"]) == ("With a picture", "https://example.com/a.jpg", True)


async def test_a_text_past_the_caption_limit_goes_as_a_message_previewing_the_photo(channels, sandbox, handle):
    chat_id = await channels.chat_for_posting(handle)
    text = "x" * (CAPTION_LIMIT + 1)
    await channels.publish(chat_id, handle, text, "https://example.com/b.jpg")
    [post] = await sandbox.posts(handle)
    assert (post["text"], post["media_url"], post["photo"]) == (text, "https://example.com/b.jpg", False)


@pytest.mark.parametrize("mode, words", [("not_admin", "bot is not a member of the channel chat"),
                                          ("no_post_rights", "need administrator rights in the channel chat")])
async def test_publish_to_a_channel_that_revoked_the_bots_rights_is_refused_definitely(channels, sandbox, handle,
                                                                                       mode, words):
    chat_id = await channels.chat_for_posting(handle)
    await sandbox.refuse(handle, mode)
    for media_url in (None, "https://example.com/p.jpg"):
        with pytest.raises(ChannelRefused) as refused:
            await channels.publish(chat_id, handle, "hello", media_url)
        assert words in refused.value.telegram_words.lower()
    assert await sandbox.posts(handle) == []


async def test_is_up_is_true_while_the_post_is_up_and_false_once_deleted(channels, sandbox, handle):
    chat_id = await channels.chat_for_posting(handle)
    posted = await channels.publish(chat_id, handle, "stay up", None)
    assert await channels.is_up(chat_id, posted.message_id) is True
    await sandbox.delete(handle, posted.message_id)
    assert await channels.is_up(chat_id, posted.message_id) is False
    [post] = await sandbox.posts(handle)
    assert post["deleted"] and post["deleted_at"]


async def test_is_up_of_a_message_that_never_existed_is_false(channels, handle):
    chat_id = await channels.chat_for_posting(handle)
    assert await channels.is_up(chat_id, 999) is False


async def test_is_up_in_a_deleted_channel_is_false(channels, sandbox, handle):
    chat_id = await channels.chat_for_posting(handle)
    posted = await channels.publish(chat_id, handle, "here", None)
    await sandbox.refuse(handle, "not_found")
    assert await channels.is_up(chat_id, posted.message_id) is False


async def test_is_up_when_the_bot_was_kicked_is_a_refusal_not_an_answer(channels, sandbox, handle):
    chat_id = await channels.chat_for_posting(handle)
    posted = await channels.publish(chat_id, handle, "here", None)
    await sandbox.refuse(handle, "blocked")
    with pytest.raises(ChannelRefused):
        await channels.is_up(chat_id, posted.message_id)


async def test_flood_control_is_transient_with_telegrams_retry_after(channels, sandbox, handle):
    chat_id = await channels.chat_for_posting(handle)
    await sandbox.fault("sendMessage", "429", retry_after=7)
    with pytest.raises(TransientChannelError) as transient:
        await channels.publish(chat_id, handle, "hello", None)
    assert transient.value.retry_after == 7.0
    assert not transient.value.maybe_delivered
    assert await sandbox.posts(handle) == []
    assert (await channels.publish(chat_id, handle, "hello", None)).message_id == 1  # the fault was for one call


@pytest.mark.parametrize("kind", ["500", "502"])
async def test_a_server_error_is_transient(channels, sandbox, handle, kind):
    chat_id = await channels.chat_for_posting(handle)
    await sandbox.fault("sendMessage", kind)
    with pytest.raises(TransientChannelError) as transient:
        await channels.publish(chat_id, handle, "hello", None)
    assert transient.value.retry_after is None
    assert len(transient.value.message) <= 300


async def test_a_server_error_during_the_check_is_transient(channels, sandbox, handle):
    chat_id = await channels.chat_for_posting(handle)
    await sandbox.fault("getChatMember", "500")
    with pytest.raises(TransientChannelError):
        await channels.chat_for_posting(handle)
    assert await channels.chat_for_posting(handle) == chat_id


async def test_a_post_whose_answer_never_comes_is_out_and_the_error_says_it_may_be(sandbox, handle):
    async with TelegramChannels(sandbox.api_url, sandbox.token, timeout_s=0.5) as impatient:
        chat_id = await impatient.chat_for_posting(handle)
        await sandbox.fault("sendMessage", "stall_after_post", stall_s=3)
        with pytest.raises(TransientChannelError) as transient:
            await impatient.publish(chat_id, handle, "sent, unanswered", None)
    assert transient.value.maybe_delivered
    assert [post["text"] for post in await sandbox.posts(handle)] == ["sent, unanswered"]


async def test_a_wrong_token_is_rejected_definitely_without_quoting_it(sandbox):
    wrong = new_token()
    with pytest.raises(TokenRejected) as rejected:
        async with TelegramChannels(sandbox.api_url, wrong):
            pass
    assert isinstance(rejected.value, ChannelRefused)
    assert wrong not in str(rejected.value) and rejected.value.__cause__ is None


async def test_an_unreachable_api_is_transient_and_delivered_nothing(handle):
    token = new_token()
    async with TelegramChannels("http://127.0.0.1:9", token, timeout_s=1.0) as nowhere:  # start only warns
        with pytest.raises(TransientChannelError) as transient:
            await nowhere.chat_for_posting(handle)
    assert not transient.value.maybe_delivered


async def test_the_token_is_never_logged(sandbox, handle, caplog):
    caplog.set_level(logging.DEBUG)
    async with TelegramChannels(sandbox.api_url, sandbox.token) as adapter:
        chat_id = await adapter.chat_for_posting(handle)
        await adapter.publish(chat_id, handle, "hello", None)
        await sandbox.fault("sendMessage", "500")
        with pytest.raises(TransientChannelError):
            await adapter.publish(chat_id, handle, "hello", None)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "sendMessage" in logged  # the loggers that print URLs did run
    assert sandbox.token not in logged


# ---- Telegram's refusals about chats and text ---------------------------------
@pytest.mark.parametrize("handle", ["@abc", "@1channel", "@channel_", "@chan__nel", "@" + "a" * 40])
async def test_a_handle_telegram_would_never_give_out_is_refused_as_not_found(channels, handle):
    # The platform's own rule (@ and 3-64 letters, digits, _) lets these through; Telegram has no such chat.
    with pytest.raises(ChatNotFound) as refused:
        await channels.chat_for_posting(handle)
    assert refused.value.message == f"channel {handle} not found"


@pytest.mark.parametrize("text, mode, words", [("<b>Sale", "HTML", "can't parse entities"),
                                               ("Only 5.00", "MarkdownV2", "can't parse entities"),
                                               ("Sale", "Textile", "unsupported parse_mode")])
async def test_markup_telegram_cannot_read_is_a_definite_refusal(bot, handle, text, mode, words):
    with pytest.raises(tg.BadRequest) as raised:
        await bot.send_message(handle, text, parse_mode=mode)
    refused = classify(raised.value)
    assert type(refused) is ChannelRefused and words in refused.message.lower()  # PTB capitalizes it


async def test_a_text_too_long_in_utf16_code_units_is_a_definite_refusal(channels, sandbox, handle):
    chat_id = await channels.chat_for_posting(handle)
    text = "😀" * 2049  # 2049 characters, 4098 UTF-16 code units: the adapter counts as Telegram does
    with pytest.raises(ChannelRefused) as refused:
        await channels.publish(chat_id, handle, text, None)
    assert "longer than telegram's 4096" in refused.value.message.lower()
    assert await sandbox.posts(handle) == []


async def test_a_caption_long_in_utf16_code_units_goes_as_a_message_previewing_the_photo(channels, sandbox, handle):
    chat_id = await channels.chat_for_posting(handle)
    text = "😀" * 600  # 600 characters, 1200 UTF-16 code units: past the caption limit
    await channels.publish(chat_id, handle, text, "https://example.com/c.jpg")
    [post] = await sandbox.posts(handle)
    assert (post["text"], post["media_url"], post["photo"]) == (text, "https://example.com/c.jpg", False)
