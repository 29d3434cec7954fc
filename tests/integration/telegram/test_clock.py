"""The sandbox's clock (POST /sandbox/clock): tests move it forward, never
back; message dates, deleted_at and the 48-hour limit on a bot deleting a
post follow it, and it survives a restart and a reset."""
import time

import httpx
import pytest
from telegram import error as tg

from sandbox.testing import control_headers, running_sandbox
from services.campaigns.telegram import ChannelRefused, TelegramChannels, classify

HOUR = 3600


async def test_the_clock_reads_this_machines_time_and_moves_forward_by_advance_s(sandbox):
    before = await sandbox.clock()
    assert abs(before["now"] - (time.time() + before["offset_s"])) < 5
    moved = await sandbox.advance_clock(2 * HOUR)
    assert moved["offset_s"] == pytest.approx(before["offset_s"] + 2 * HOUR)
    assert moved["now"] - before["now"] >= 2 * HOUR


async def test_the_clock_moves_to_a_given_time_but_never_back(sandbox):
    now = (await sandbox.clock())["now"]
    assert (await sandbox.set_clock(now + 600))["now"] >= now + 600
    async with httpx.AsyncClient(base_url=sandbox.api_url, headers=control_headers(sandbox.control_token)) as http:
        back = await http.post("/sandbox/clock", json={"now": now})
        negative = await http.post("/sandbox/clock", json={"advance_s": -1})
        both = await http.post("/sandbox/clock", json={"now": now + 10_000, "advance_s": 5})
        text = await http.post("/sandbox/clock", json={"advance_s": "1h"})
        far = await http.post("/sandbox/clock", json={"advance_s": 1e300})
    assert (back.status_code, negative.status_code, far.status_code) == (409, 409, 409)
    assert "only moves forward" in back.json()["error"]
    assert (both.status_code, text.status_code) == (400, 400)
    assert (await sandbox.clock())["now"] < now + 10_000  # nothing moved


async def test_message_dates_and_deleted_at_follow_the_clock(sandbox, bot, handle):
    await sandbox.advance_clock(24 * HOUR)
    now = (await sandbox.clock())["now"]
    message = await bot.send_message(handle, "dated")
    assert abs(message.date.timestamp() - now) < 5
    await sandbox.delete(handle, message.message_id)
    [post] = await sandbox.posts(handle)
    assert abs(post["date"] - now) < 5 and abs(post["deleted_at"] - now) < 5


async def test_a_bot_cannot_delete_a_channel_post_older_than_48_hours(sandbox, bot_api, handle):
    code, sent = await bot_api("sendMessage", chat_id=handle, text="two days old")
    message_id = sent["result"]["message_id"]
    await sandbox.advance_clock(48 * HOUR)
    code, refused = await bot_api("deleteMessage", chat_id=handle, message_id=message_id)
    assert (code, refused) == (400, {"ok": False, "error_code": 400,
                                     "description": "Bad Request: message can't be deleted"})
    [post] = await sandbox.posts(handle)
    assert not post["deleted"]
    await sandbox.delete(handle, message_id)  # a person in the Telegram app has no such limit
    assert (await sandbox.posts(handle))[0]["deleted"]


async def test_a_bot_deletes_a_channel_post_younger_than_48_hours(sandbox, bot_api, handle):
    code, sent = await bot_api("sendMessage", chat_id=handle, text="almost two days old")
    await sandbox.advance_clock(48 * HOUR - 60)
    code, deleted = await bot_api("deleteMessage", chat_id=handle, message_id=sent["result"]["message_id"])
    assert (code, deleted) == (200, {"ok": True, "result": True})


async def test_a_post_too_old_to_delete_is_a_bad_request_the_adapter_takes_as_definite(sandbox, bot, handle):
    message = await bot.send_message(handle, "kept")
    await sandbox.advance_clock(49 * HOUR)
    with pytest.raises(tg.BadRequest, match="can't be deleted") as refused:
        await bot.delete_message(handle, message.message_id)
    assert type(classify(refused.value)) is ChannelRefused


async def test_the_clock_survives_a_restart_and_a_reset(tmp_path):
    async with running_sandbox(tmp_path) as sandbox:
        offset = (await sandbox.advance_clock(72 * HOUR))["offset_s"]
        await sandbox.restart()
        assert (await sandbox.clock())["offset_s"] == pytest.approx(offset)
        await sandbox.reset()
        assert (await sandbox.clock())["offset_s"] == pytest.approx(offset)
        async with TelegramChannels(sandbox.api_url, sandbox.token) as adapter:
            chat_id = await adapter.chat_for_posting("@later")
            await adapter.publish(chat_id, "@later", "three days on", None)
        [post] = await sandbox.posts("@later")
        assert post["date"] >= time.time() + 72 * HOUR - 5
