"""getUpdates as Telegram serves it: increasing update ids kept across a
restart, an offset confirming what came before it, long polling woken by
an update, a second poller ending the waiting one with 409 Conflict, the
bot's allowed_updates kept from its last call; and the webhook methods a
polling bot calls."""
import asyncio
import signal
import time

import pytest
import telegram
from telegram import error as tg

from sandbox.testing import running_sandbox


@pytest.fixture(autouse=True)
async def nothing_pending(sandbox):
    """Each test starts with no user and no pending update (ids go on)."""
    await sandbox.reset()


async def test_updates_get_increasing_ids_and_an_offset_confirms_the_ones_before_it(sandbox, bot):
    user = await sandbox.create_user()
    sent = [await sandbox.send_message(user["id"], f"message {n}") for n in range(3)]
    ids = [s["update_id"] for s in sent]
    assert ids == sorted(ids) and len(set(ids)) == 3
    assert [u.update_id for u in await bot.get_updates()] == ids  # no offset: every pending one, none confirmed
    assert [u.message.text for u in await bot.get_updates(offset=ids[1])] == ["message 1", "message 2"]
    assert [u.update_id for u in await bot.get_updates()] == ids[1:]  # the first is forgotten
    assert await bot.get_updates(offset=ids[2] + 1) == ()
    assert (await sandbox.updates())["pending"] == []


async def test_limit_caps_the_answer_and_a_negative_offset_keeps_the_last_ones(sandbox, bot):
    user = await sandbox.create_user()
    ids = [(await sandbox.send_message(user["id"], f"m{n}"))["update_id"] for n in range(5)]
    assert [u.update_id for u in await bot.get_updates(limit=2)] == ids[:2]
    assert [u.update_id for u in await bot.get_updates(offset=-2)] == ids[3:]
    assert [u.update_id for u in await bot.get_updates()] == ids[3:]


async def test_a_long_poll_answers_as_soon_as_an_update_arrives(sandbox, bot):
    user = await sandbox.create_user()
    started = time.monotonic()
    polling = asyncio.create_task(bot.get_updates(timeout=10))
    await asyncio.sleep(0.3)
    assert not polling.done()
    sent = await sandbox.send_message(user["id"], "wake up")
    [update] = await asyncio.wait_for(polling, 5)
    assert update.update_id == sent["update_id"] and time.monotonic() - started < 5


async def test_a_long_poll_with_nothing_to_give_answers_empty_after_its_timeout(bot):
    started = time.monotonic()
    assert await bot.get_updates(timeout=1) == ()
    assert 0.9 <= time.monotonic() - started < 4


async def test_a_second_poller_ends_the_waiting_one_with_409_conflict(sandbox):
    async with telegram.Bot(sandbox.token, base_url=f"{sandbox.api_url}/bot") as first, \
            telegram.Bot(sandbox.token, base_url=f"{sandbox.api_url}/bot") as second:
        waiting = asyncio.create_task(first.get_updates(timeout=10))
        await asyncio.sleep(0.3)
        user = await sandbox.create_user()
        polling = asyncio.create_task(second.get_updates(timeout=10))
        with pytest.raises(tg.Conflict, match="terminated by other getUpdates request"):
            await asyncio.wait_for(waiting, 5)
        sent = await sandbox.send_message(user["id"], "to the one that polls")
        [update] = await asyncio.wait_for(polling, 5)
        assert update.update_id == sent["update_id"]


async def test_the_409_is_telegrams_answer_on_the_wire(sandbox, bot_api):
    waiting = asyncio.create_task(bot_api("getUpdates", timeout=10))
    await asyncio.sleep(0.3)
    assert await bot_api("getUpdates") == (200, {"ok": True, "result": []})
    assert await asyncio.wait_for(waiting, 5) == (409, {
        "ok": False, "error_code": 409,
        "description": "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running"})


async def test_allowed_updates_are_kept_from_the_last_call_and_leave_other_kinds_out(sandbox, bot):
    user = await sandbox.create_user()
    assert await bot.get_updates(allowed_updates=["callback_query"]) == ()
    skipped = await sandbox.send_message(user["id"], "not wanted")
    assert skipped["update_id"] is None and skipped["message_id"] > 0  # written, but no update made
    assert await bot.get_updates() == ()  # the last list still applies
    assert (await sandbox.updates())["allowed_updates"] == ["callback_query"]
    assert await bot.get_updates(allowed_updates=[]) == ()  # empty: Telegram's default again
    sent = await sandbox.send_message(user["id"], "wanted")
    assert [u.message.text for u in await bot.get_updates()] == ["wanted"]
    assert sent["update_id"] > 0


async def test_delete_webhook_answers_true_and_can_drop_pending_updates(sandbox, bot):
    user = await sandbox.create_user()
    await sandbox.send_message(user["id"], "one")
    info = await bot.get_webhook_info()
    assert (info.url, info.has_custom_certificate, info.pending_update_count) == ("", False, 1)
    assert await bot.delete_webhook() is True
    assert (await bot.get_webhook_info()).pending_update_count == 1
    assert await bot.delete_webhook(drop_pending_updates=True) is True
    assert await bot.get_updates() == ()


async def test_get_me_gives_the_bots_username_for_its_start_links(bot):
    me = await bot.get_me()
    assert me.username == "adtech_sandbox_bot" and me.is_bot and me.id == bot.id


async def test_reset_forgets_users_memberships_messages_and_updates_but_ids_go_on(sandbox, bot):
    user = await sandbox.create_user()
    await sandbox.set_member("@reset_me", user["id"], "creator")
    before = (await sandbox.send_message(user["id"], "hi"))["update_id"]
    await bot.send_message(user["id"], "hello")
    await sandbox.reset()
    assert await sandbox.users() == [] and await bot.get_updates() == ()
    with pytest.raises(tg.BadRequest, match="not found"):
        await bot.send_message(user["id"], "still there?")
    again = await sandbox.create_user()
    assert (await sandbox.send_message(again["id"], "hi"))["update_id"] > before
    assert (await sandbox.channel("@reset_me"))["members"] == []


async def test_pending_updates_and_chats_survive_a_restart_and_ids_keep_increasing(tmp_path):
    async with running_sandbox(tmp_path) as sandbox:
        user = await sandbox.create_user("durable_user")
        ids = [(await sandbox.send_message(user["id"], f"m{n}"))["update_id"] for n in range(3)]
        async with telegram.Bot(sandbox.token, base_url=f"{sandbox.api_url}/bot") as bot:
            assert len(await bot.get_updates(offset=ids[1])) == 2  # confirms the first
            sent = await bot.send_message(user["id"], "kept", reply_markup=telegram.InlineKeyboardMarkup(
                [[telegram.InlineKeyboardButton("Go", callback_data="go")]]))
        await sandbox.restart()
        async with telegram.Bot(sandbox.token, base_url=f"{sandbox.api_url}/bot") as bot:
            assert [u.message.text for u in await bot.get_updates()] == ["m1", "m2"]
            pressed = await sandbox.press(user["id"], sent.message_id, "go")
            assert pressed["update_id"] > ids[2]
            assert [u.update_id for u in await bot.get_updates(offset=ids[2] + 1)] == [pressed["update_id"]]
            assert (await bot.send_message(user["id"], "after")).message_id > sent.message_id
        assert [m["text"] for m in await sandbox.messages(user["id"])] == ["after", "kept"]


async def test_sigterm_stops_it_promptly_while_a_long_poll_waits(tmp_path):
    async with running_sandbox(tmp_path) as sandbox:
        async with telegram.Bot(sandbox.token, base_url=f"{sandbox.api_url}/bot") as bot:
            waiting = asyncio.create_task(bot.get_updates(timeout=60))
            await asyncio.sleep(0.3)
            started = time.monotonic()
            assert await sandbox.stop(signal.SIGTERM, timeout_s=5) in (0, -signal.SIGTERM)
            assert time.monotonic() - started < 5
            with pytest.raises(tg.TelegramError):
                await waiting
