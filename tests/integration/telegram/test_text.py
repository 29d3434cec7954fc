"""Text as Telegram takes it: parse_mode HTML, MarkdownV2 and Markdown
read into plain text and entities, broken markup refused in Telegram's
words, the text trimmed and then counted in UTF-16 code units, a post's
buttons kept, and "message is not modified" judged on text, formatting
and buttons together."""
import uuid

import pytest
from telegram import InlineKeyboardButton, InlineKeyboardMarkup
from telegram import error as tg

BUTTONS = {"inline_keyboard": [[{"text": "Shop", "url": "https://example.com/"}]]}
OTHER_BUTTONS = {"inline_keyboard": [[{"text": "Sale", "url": "https://example.com/sale"}]]}
NOT_MODIFIED = "Bad Request: message is not modified"


@pytest.fixture(scope="module")
def sandbox(quiet_sandbox):
    return quiet_sandbox


@pytest.fixture
def handle() -> str:
    return f"@text_{uuid.uuid4().hex[:12]}"


def entities(message: dict, field: str = "entities") -> list[tuple]:
    return [(e["type"], e["offset"], e["length"], e.get("url") or e.get("language")) for e in message.get(field, [])]


async def test_html_becomes_plain_text_and_its_entities(bot_api, sandbox, handle):
    code, raw = await bot_api("sendMessage", chat_id=handle, parse_mode="HTML", text=(
        "<b>Spring</b> <i>sale</i> &amp; <u>more</u>: <a href=\"https://shop.example/spring\">shop</a>"
        " <s>old</s> <tg-spoiler>code</tg-spoiler> <pre><code class=\"language-python\">x = 1</code></pre>"))
    assert code == 200, raw
    message = raw["result"]
    assert message["text"] == "Spring sale & more: shop old code x = 1"
    assert entities(message) == [("bold", 0, 6, None), ("italic", 7, 4, None), ("underline", 14, 4, None),
                                 ("text_link", 20, 4, "https://shop.example/spring"), ("strikethrough", 25, 3, None),
                                 ("spoiler", 29, 4, None), ("pre", 34, 5, "python")]
    [post] = await sandbox.posts(handle)
    assert post["text"] == message["text"]  # stored as Telegram shows it, without the tags


async def test_markdown_v2_becomes_plain_text_and_its_entities(bot_api, handle):
    code, raw = await bot_api("sendMessage", chat_id=handle, parse_mode="MarkdownV2",
                              text="*Bold* _it_ __under__ ~gone~ ||hidden|| `code` [site](https://example.com/a\\)b)"
                                   " 5\\.00\\!")
    assert code == 200, raw
    assert raw["result"]["text"] == "Bold it under gone hidden code site 5.00!"
    assert entities(raw["result"]) == [("bold", 0, 4, None), ("italic", 5, 2, None), ("underline", 8, 5, None),
                                       ("strikethrough", 14, 4, None), ("spoiler", 19, 6, None),
                                       ("code", 26, 4, None), ("text_link", 31, 4, "https://example.com/a)b")]


async def test_legacy_markdown_becomes_plain_text_and_its_entities(bot_api, handle):
    code, raw = await bot_api("sendMessage", chat_id=handle, parse_mode="Markdown",
                              text="*bold* _it_ `code` [site](https://example.com) 5.00!")
    assert code == 200, raw
    assert raw["result"]["text"] == "bold it code site 5.00!"
    assert [e[0] for e in entities(raw["result"])] == ["bold", "italic", "code", "text_link"]


@pytest.mark.parametrize("mode, text, words", [
    ("HTML", "<b>Sale", "Can't find end tag corresponding to start tag \"b\""),
    ("HTML", "<p>Sale</p>", "Unsupported start tag \"p\" at byte offset 0"),
    ("HTML", "<b>Sale</i>", "Unmatched end tag at byte offset 7, expected \"</b>\", found \"</i>\""),
    ("HTML", "Sale</b>", "Unexpected end tag at byte offset 4"),
    ("HTML", "5 < 6", "Unsupported start tag \"\" at byte offset 2"),
    ("HTML", "<span>x</span>", "Tag \"span\" must have class \"tg-spoiler\" at byte offset 0"),
    ("MarkdownV2", "Only 5.00 today", "Character '.' is reserved and must be escaped with the preceding '\\'"),
    ("MarkdownV2", "*Sale", "Can't find end of Bold entity at byte offset 0"),
    ("MarkdownV2", "😀 _sale", "Can't find end of Italic entity at byte offset 5"),
    ("MarkdownV2", "[site](https://example.com", "Can't find end of a URL at byte offset 7"),
    ("Markdown", "*Sale", "Can't find end of the entity starting at byte offset 0"),
])
async def test_broken_markup_is_refused_in_telegrams_words_and_nothing_is_posted(bot, bot_api, sandbox, handle, mode,
                                                                                 text, words):
    code, raw = await bot_api("sendMessage", chat_id=handle, text=text, parse_mode=mode)
    assert (code, raw["description"]) == (400, f"Bad Request: can't parse entities: {words}")
    with pytest.raises(tg.BadRequest, match="parse entities"):
        await bot.send_message(handle, text, parse_mode=mode)
    assert await sandbox.posts(handle) == []


@pytest.mark.parametrize("mode", ["Textile", "html5", None])
async def test_a_parse_mode_telegram_does_not_have_is_refused(bot_api, sandbox, handle, mode):
    code, raw = await bot_api("sendMessage", chat_id=handle, text="<b>hi</b>", parse_mode=mode)
    assert (code, raw["description"]) == (400, "Bad Request: unsupported parse_mode")
    assert await sandbox.posts(handle) == []


async def test_the_parse_mode_is_read_whatever_its_case(bot_api, handle):
    code, raw = await bot_api("sendMessage", chat_id=handle, text="<b>hi</b>", parse_mode="html")
    assert code == 200 and entities(raw["result"]) == [("bold", 0, 2, None)]


async def test_without_a_parse_mode_markup_is_plain_text(bot_api, handle):
    code, raw = await bot_api("sendMessage", chat_id=handle, text="<b>hi</b> *there*")
    assert code == 200 and raw["result"]["text"] == "<b>hi</b> *there*" and "entities" not in raw["result"]


async def test_entities_given_beside_the_text_are_kept(bot, handle):
    message = await bot.send_message(handle, "Big news", entities=[{"type": "bold", "offset": 0, "length": 3}])
    assert [(e.type, e.offset, e.length) for e in message.entities] == [("bold", 0, 3)]


async def test_the_text_is_trimmed_before_its_length_is_checked(bot_api, sandbox, handle):
    code, raw = await bot_api("sendMessage", chat_id=handle, text="  \n" + "x" * 4096 + "\n\t ")
    assert code == 200 and raw["result"]["text"] == "x" * 4096
    code, raw = await bot_api("sendMessage", chat_id=handle, text=" \n\t ")
    assert (code, raw["description"]) == (400, "Bad Request: message text is empty")
    code, raw = await bot_api("sendMessage", chat_id=handle, text="<b> </b>", parse_mode="HTML")
    assert (code, raw["description"]) == (400, "Bad Request: message text is empty")


async def test_a_trimmed_text_keeps_its_entities_where_its_words_are(bot_api, handle):
    code, raw = await bot_api("sendMessage", chat_id=handle, text="\n  <b>Sale</b> now  ", parse_mode="HTML")
    assert code == 200 and raw["result"]["text"] == "Sale now"
    assert entities(raw["result"]) == [("bold", 0, 4, None)]


async def test_the_length_is_counted_in_utf16_code_units_after_the_markup_is_read(bot_api, handle):
    fits = [("😀" * 2048, None), ("é" * 4096, None), ("<b>" + "x" * 4096 + "</b>", "HTML")]
    for text, mode in fits:
        code, raw = await bot_api("sendMessage", chat_id=handle, text=text, **({"parse_mode": mode} if mode else {}))
        assert code == 200, (text[:10], raw)
    code, raw = await bot_api("sendMessage", chat_id=handle, text="😀" * 2049)  # 2049 characters, 4098 units
    assert (code, raw["description"]) == (400, "Bad Request: message is too long")


async def test_a_caption_is_counted_in_utf16_code_units(bot_api, handle):
    photo = "https://example.com/a.jpg"
    code, raw = await bot_api("sendPhoto", chat_id=handle, photo=photo, caption="😀" * 512)
    assert code == 200, raw
    code, raw = await bot_api("sendPhoto", chat_id=handle, photo=photo, caption="😀" * 513)
    assert (code, raw["description"]) == (400, "Bad Request: message caption is too long")


async def test_entity_offsets_count_an_emoji_as_two_units(bot, handle):
    message = await bot.send_message(handle, "😀 <b>bold</b> 👍🏽 <i>it</i>", parse_mode="HTML")
    assert [(e.type, e.offset, e.length) for e in message.entities] == [("bold", 3, 4), ("italic", 13, 2)]
    assert [message.parse_entity(e) for e in message.entities] == ["bold", "it"]


# ---- buttons on channel posts ------------------------------------------------
async def test_a_posts_buttons_are_kept_and_returned(bot, bot_api, handle):
    code, raw = await bot_api("sendMessage", chat_id=handle, text="With a button", reply_markup=BUTTONS)
    assert code == 200 and raw["result"]["reply_markup"] == BUTTONS
    markup = InlineKeyboardMarkup([[InlineKeyboardButton("Shop", url="https://example.com/")]])
    photo = await bot.send_photo(handle, "https://example.com/a.jpg", caption="Look", reply_markup=markup)
    assert photo.reply_markup == markup


async def test_not_modified_compares_a_posts_buttons(bot_api, handle):
    message_id = (await bot_api("sendMessage", chat_id=handle, text="Sale", reply_markup=BUTTONS))[1]["result"][
        "message_id"]
    same = await bot_api("editMessageReplyMarkup", chat_id=handle, message_id=message_id, reply_markup=BUTTONS)
    assert same[0] == 400 and same[1]["description"].startswith(NOT_MODIFIED)
    code, raw = await bot_api("editMessageReplyMarkup", chat_id=handle, message_id=message_id,
                              reply_markup=OTHER_BUTTONS)
    assert code == 200 and raw["result"]["reply_markup"] == OTHER_BUTTONS and raw["result"]["edit_date"]


async def test_the_proof_probe_answers_not_modified_on_a_post_without_buttons(bot_api, handle):
    message_id = (await bot_api("sendMessage", chat_id=handle, text="No buttons"))[1]["result"]["message_id"]
    code, raw = await bot_api("editMessageReplyMarkup", chat_id=handle, message_id=message_id)
    assert code == 400 and raw["description"].startswith(NOT_MODIFIED)


async def test_the_proof_probe_takes_the_buttons_off_a_post_that_has_them(bot_api, handle):
    message_id = (await bot_api("sendMessage", chat_id=handle, text="Buttons", reply_markup=BUTTONS))[1]["result"][
        "message_id"]
    code, raw = await bot_api("editMessageReplyMarkup", chat_id=handle, message_id=message_id)
    assert code == 200 and "reply_markup" not in raw["result"]  # as on Telegram: the probe is no longer a no-op
    again = await bot_api("editMessageReplyMarkup", chat_id=handle, message_id=message_id)
    assert again[0] == 400 and again[1]["description"].startswith(NOT_MODIFIED)


# ---- the bot's messages to users ---------------------------------------------
async def test_the_same_words_in_other_formatting_are_a_modification(bot_api, user):
    message_id = (await bot_api("sendMessage", chat_id=user["id"], text="Accept?"))[1]["result"]["message_id"]
    code, raw = await bot_api("editMessageText", chat_id=user["id"], message_id=message_id, text="<b>Accept?</b>",
                              parse_mode="HTML")
    assert code == 200 and raw["result"]["text"] == "Accept?" and entities(raw["result"]) == [("bold", 0, 7, None)]
    code, raw = await bot_api("editMessageText", chat_id=user["id"], message_id=message_id, text="*Accept?*",
                              parse_mode="MarkdownV2")
    assert code == 400 and raw["description"].startswith(NOT_MODIFIED)
    code, raw = await bot_api("editMessageText", chat_id=user["id"], message_id=message_id, text="  Accept?  ")
    assert code == 200 and "entities" not in raw["result"]


async def test_a_private_message_refuses_broken_markup_as_a_post_does(bot_api, user):
    code, raw = await bot_api("sendMessage", chat_id=user["id"], text="<b>Accept?", parse_mode="HTML")
    assert (code, raw["description"]) == \
        (400, "Bad Request: can't parse entities: Can't find end tag corresponding to start tag \"b\"")
