"""Chats as Telegram names them: a handle is a username Telegram could
have given out (5-32 letters, digits and single underscores, a letter
first, no underscore last), any other is a chat Telegram does not have;
a channel's id is -100 and ten digits, the same for its username in any
case, the part after -100 being the id of its t.me/c/ links."""
import re
import uuid

import pytest
from telegram import error as tg

from sandbox.people import USERNAME
from tests import factories
from tests.e2e import client as e2e_client

CHANNEL_ID = re.compile(r"-100[1-9]\d{9}")
IMPOSSIBLE = ["@", "@ab", "@abcd", "@has space", "@1channel", "@_channel", "@channel_", "@chan__nel",
              "@" + "a" * 33, "@bad-handle", "@café_news", "@@double"]


@pytest.fixture(scope="module")
def sandbox(quiet_sandbox):
    return quiet_sandbox


@pytest.mark.parametrize("handle", IMPOSSIBLE)
async def test_a_username_telegram_would_never_give_out_is_chat_not_found(sandbox, bot, bot_api, handle):
    for method, params in [("getChat", {}), ("getChatMember", {"user_id": bot.id}),
                           ("sendMessage", {"text": "hello"})]:
        code, raw = await bot_api(method, chat_id=handle, **params)
        assert (code, raw["description"]) == (400, "Bad Request: chat not found"), (method, raw)
    with pytest.raises(tg.BadRequest, match="Chat not found"):
        await bot.get_chat(handle)
    assert handle[1:].lower() not in [channel["handle"][1:].lower() for channel in await sandbox.channels()]


@pytest.mark.parametrize("handle", ["@abcde", "@news_daily_2", "@A1_b2_C3", "@" + "a" * 32])
async def test_a_username_telegram_could_give_out_is_a_channel(bot, handle):
    chat = await bot.get_chat(handle)
    assert chat.type == "channel" and chat.username == handle[1:]


async def test_a_channel_id_is_minus_100_and_ten_digits_the_same_in_any_case(bot, bot_api):
    names = [f"@ids_{uuid.uuid4().hex[:10]}" for _ in range(20)]
    ids = [(await bot.get_chat(name)).id for name in names]
    assert all(CHANNEL_ID.fullmatch(str(chat_id)) for chat_id in ids), ids
    assert len(set(ids)) == len(ids)
    assert [(await bot.get_chat(name.upper())).id for name in names[:3]] == ids[:3]
    code, raw = await bot_api("getChat", chat_id=ids[0])
    assert code == 200 and raw["result"]["username"] == names[0][1:]


@pytest.mark.parametrize("chat_id", [-1001234567890, "-100", "channel", "t.me/news_daily"])
async def test_an_id_that_names_no_channel_is_chat_not_found(bot_api, chat_id):
    code, raw = await bot_api("getChat", chat_id=chat_id)
    assert (code, raw["description"]) == (400, "Bad Request: chat not found")


def test_the_handles_the_platforms_tests_make_are_usernames_telegram_accepts():
    made = [factories.handle(), e2e_client.handle(), f"@chan_{uuid.uuid4().hex[:12]}",
            f"@bench_{uuid.uuid4().hex[:10]}", f"@own_{uuid.uuid4().hex[:10]}", f"@crash_{uuid.uuid4().hex[:10]}",
            f"@bot_{uuid.uuid4().hex[:8]}", f"@Cats{uuid.uuid4().hex[:10]}"]
    assert [handle for handle in made if not USERNAME.fullmatch(handle[1:])] == []
