"""Flood control as Telegram words it (docs/sandbox.md): one chat takes a
burst of 5 messages and then one a second, a channel 20 in any minute,
all chats together 30 in any second; over a limit a send answers 429
"Too Many Requests: retry after N" with parameters.retry_after and a
Retry-After header, and does nothing. Each test starts with nothing counted: the
sandbox's clock moves a minute on first."""
import asyncio
import secrets
import subprocess
import sys
import uuid

import httpx
import pytest
from telegram import error as tg

from sandbox import new_token
from sandbox.testing import running_sandbox
from services.campaigns.telegram import TransientChannelError, classify

CHAT_BURST = 5


@pytest.fixture(autouse=True)
async def full_buckets(sandbox):
    await sandbox.advance_clock(60)


@pytest.fixture(scope="module")
async def send(sandbox):
    """A raw Bot API call: (status, body, Retry-After header or None)."""
    async with httpx.AsyncClient(base_url=f"{sandbox.api_url}/bot{sandbox.token}") as http:
        async def call(method: str, **params):
            answer = await http.post(f"/{method}", json=params)
            return answer.status_code, answer.json(), answer.headers.get("retry-after")
        yield call


def too_many(seconds: int) -> dict:
    return {"ok": False, "error_code": 429, "description": f"Too Many Requests: retry after {seconds}",
            "parameters": {"retry_after": seconds}}


async def test_a_burst_to_one_channel_meets_429_with_retry_after_and_a_retry_after_header(sandbox, send, handle):
    sent = [await send("sendMessage", chat_id=handle, text=f"post {n}") for n in range(CHAT_BURST)]
    assert [status for status, _, _ in sent] == [200] * CHAT_BURST
    status, body, header = await send("sendMessage", chat_id=handle, text="one too many")
    assert (status, body, header) == (429, too_many(1), "1")
    assert len(await sandbox.posts(handle)) == CHAT_BURST  # the refused send did nothing


async def test_once_retry_after_has_passed_the_chat_takes_a_message_again(sandbox, send, handle):
    for n in range(CHAT_BURST):
        await send("sendMessage", chat_id=handle, text=f"post {n}")
    status, body, _ = await send("sendMessage", chat_id=handle, text="too soon")
    assert status == 429
    await sandbox.advance_clock(body["parameters"]["retry_after"])
    assert (await send("sendMessage", chat_id=handle, text="in time"))[0] == 200
    assert (await send("sendMessage", chat_id=handle, text="too soon again"))[0] == 429


async def test_a_burst_to_one_chat_leaves_other_chats_free(send, handle):
    for n in range(CHAT_BURST + 1):
        await send("sendMessage", chat_id=handle, text=f"post {n}")
    assert (await send("sendMessage", chat_id=f"@other_{uuid.uuid4().hex[:10]}", text="elsewhere"))[0] == 200


async def test_sending_photos_and_editing_count_as_sends(sandbox, send, user, handle):
    statuses = [(await send("sendPhoto", chat_id=handle, photo=f"https://example.com/{n}.jpg"))[0]
                for n in range(CHAT_BURST + 1)]
    assert statuses == [200] * CHAT_BURST + [429]
    _, sent, _ = await send("sendMessage", chat_id=user["id"], text="v0")
    message_id = sent["result"]["message_id"]
    edits = [(await send("editMessageText", chat_id=user["id"], message_id=message_id, text=f"v{n}"))[0]
             for n in range(1, CHAT_BURST + 1)]
    assert edits == [200] * (CHAT_BURST - 1) + [429]


async def test_refused_calls_and_reads_draw_on_no_limit(sandbox, send, handle):
    _, sent, _ = await send("sendMessage", chat_id=handle, text="first")
    for _ in range(3 * CHAT_BURST):
        assert (await send("sendMessage", chat_id=handle, text=" "))[0] == 400  # empty text: nothing sent
        assert (await send("editMessageReplyMarkup", chat_id=handle,  # the adapter's proof probe
                           message_id=sent["result"]["message_id"]))[0] == 400
        assert (await send("getChat", chat_id=handle))[0] == 200
    statuses = [(await send("sendMessage", chat_id=handle, text=f"post {n}"))[0] for n in range(CHAT_BURST)]
    assert statuses == [200] * (CHAT_BURST - 1) + [429]


async def test_an_armed_429_carries_the_retry_after_header_too(sandbox, send, handle):
    await sandbox.fault("getChat", "429", retry_after=7)
    assert await send("getChat", chat_id=handle) == (429, too_many(7), "7")


async def test_a_reset_forgets_who_sent_what(tmp_path):
    async with running_sandbox(tmp_path) as sandbox, httpx.AsyncClient(
            base_url=f"{sandbox.api_url}/bot{sandbox.token}") as http:
        statuses = [(await http.post("/sendMessage", json={"chat_id": "@flooded", "text": f"{n}"})).status_code
                    for n in range(CHAT_BURST + 1)]
        assert statuses[-1] == 429
        await sandbox.reset()
        assert (await http.post("/sendMessage", json={"chat_id": "@flooded", "text": "again"})).status_code == 200


async def test_the_adapter_takes_flood_control_as_transient_with_telegrams_retry_after(sandbox, channels, handle):
    chat_id = await channels.chat_for_posting(handle)
    for n in range(CHAT_BURST):
        await channels.publish(chat_id, handle, f"post {n}", None)
    with pytest.raises(TransientChannelError) as transient:
        await channels.publish(chat_id, handle, "one too many", "https://example.com/p.jpg")
    assert transient.value.retry_after == 1.0 and not transient.value.maybe_delivered
    assert len(await sandbox.posts(handle)) == CHAT_BURST
    assert classify(tg.RetryAfter(3)).retry_after == 3.0


# ---- the per-channel and global limits, and the settings ---------------------
@pytest.fixture(scope="module")
async def no_chat_limit(tmp_path_factory):
    """A sandbox whose per-chat limit is off: the per-minute and global ones show."""
    async with running_sandbox(tmp_path_factory.mktemp("no-chat-limit"),
                               env={"TELEGRAM_SANDBOX_FLOOD_CHAT_BURST": "0"}) as sandbox:
        yield sandbox


async def _sends(sandbox, chats: list, method: str = "sendMessage") -> list[tuple[int, dict, str | None]]:
    async with httpx.AsyncClient(base_url=f"{sandbox.api_url}/bot{sandbox.token}") as http:
        answers = [await http.post(f"/{method}", json={"chat_id": chat, "text": f"n{n}"}) for n, chat in enumerate(chats)]
    return [(a.status_code, a.json(), a.headers.get("retry-after")) for a in answers]


async def test_a_channel_takes_20_messages_in_any_minute(no_chat_limit):
    await no_chat_limit.advance_clock(60)
    answers = await _sends(no_chat_limit, ["@minute_channel"] * 21)
    assert [status for status, _, _ in answers] == [200] * 20 + [429]
    assert answers[-1][1:] == (too_many(60), "60")  # until the first of the 20 is a minute old
    await no_chat_limit.advance_clock(60)
    assert [status for status, _, _ in await _sends(no_chat_limit, ["@minute_channel"] * 21)] == [200] * 20 + [429]


async def test_a_private_chat_has_no_per_minute_limit(no_chat_limit):
    await no_chat_limit.advance_clock(60)
    user = await no_chat_limit.create_user()
    await no_chat_limit.send_message(user["id"], "hi")
    assert [status for status, _, _ in await _sends(no_chat_limit, [user["id"]] * 25)] == [200] * 25


async def test_all_chats_together_take_30_messages_a_second(no_chat_limit):
    await no_chat_limit.advance_clock(60)
    chats = [f"@everywhere_{n}_{uuid.uuid4().hex[:6]}" for n in range(60)]
    async with httpx.AsyncClient(base_url=f"{no_chat_limit.api_url}/bot{no_chat_limit.token}") as http:
        # At once: the bucket refills 30 a second in real time as well.
        answers = await asyncio.gather(*(http.post("/sendMessage", json={"chat_id": chat, "text": "hi"})
                                         for chat in chats))
    statuses = [answer.status_code for answer in answers]
    assert set(statuses) == {200, 429} and statuses.count(200) >= 30
    assert all(a.json() == too_many(1) and a.headers["retry-after"] == "1" for a in answers if a.status_code == 429)


async def test_flood_control_switched_off_lets_any_burst_through(tmp_path):
    async with running_sandbox(tmp_path, env={"TELEGRAM_SANDBOX_FLOOD_CONTROL": "false"}) as sandbox:
        answers = await _sends(sandbox, ["@unlimited"] * 40)
    assert [status for status, _, _ in answers] == [200] * 40


def test_a_negative_flood_figure_stops_the_sandbox_with_its_name(tmp_path):
    env = {"ADTECH_DATA_DIR": str(tmp_path), "TELEGRAM_SANDBOX_PORT": "0", "PATH": "/usr/bin:/bin",
           "PYTHONPATH": ":".join(sys.path), "TELEGRAM_BOT_TOKEN": new_token(),
           "TELEGRAM_SANDBOX_CONTROL_TOKEN": secrets.token_urlsafe(32), "TELEGRAM_SANDBOX_FLOOD_CHAT_BURST": "-1"}
    done = subprocess.run([sys.executable, "-m", "sandbox"], env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode != 0
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("config error: ") and "TELEGRAM_SANDBOX_FLOOD_CHAT_BURST" in line
