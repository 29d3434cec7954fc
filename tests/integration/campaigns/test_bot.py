"""The platform's bot as its own OS process (`python -m
services.campaigns.bot`) against a campaigns server and a Telegram sandbox
of their own (the bot is the one getUpdates poller of that sandbox): it
binds accounts from `/start <code>`, handles every update exactly once
whatever kills it, leads alone among several processes, and brings each
order to its channel's owner with buttons only the owner's account can use
(docs/design.md, "Who owns a channel, and who agrees")."""
import asyncio
import dataclasses
import os
import signal
import subprocess
import sys

import pytest

from adtech.campaigns.v1 import campaigns_pb2 as pb
from sandbox.testing import running_sandbox
from tests import harness
from tests.harness import eventually
from tests.integration.campaigns.conftest import CampaignsClient, advertiser, new_id, publisher, start_campaigns

USED_ALREADY = "was used already"
LINKED = "now linked"


@dataclasses.dataclass
class BotWorld:
    campaigns: CampaignsClient
    sandbox: object
    pg_server: str
    database: str
    data_dir: object

    def bot(self) -> subprocess.Popen:
        settings = {"database_url": self.pg_server, "campaigns_database": self.database,
                    "telegram_api_url": self.sandbox.api_url, "telegram_bot_token": self.sandbox.token,
                    "adtech_data_dir": str(self.data_dir), "adtech_internal_token": harness.INTERNAL_TOKEN,
                    "bot_poll_timeout_s": 1, "log_level": "WARNING"}
        return subprocess.Popen([sys.executable, "-m", "services.campaigns.bot"],
                                env={**os.environ, **{k.upper(): str(v) for k, v in settings.items()}})

    async def code_for(self, actor) -> str:
        return (await self.campaigns.call("CreateTelegramLink", pb.CreateTelegramLinkRequest(), actor)).code

    async def linked(self, actor) -> pb.GetTelegramAccountResponse:
        return await self.campaigns.call("GetTelegramAccount", pb.GetTelegramAccountRequest(), actor)

    async def texts(self, user_id: int) -> list[str]:
        return [m["text"] for m in await self.sandbox.messages(user_id)]


@pytest.fixture(scope="module")
async def world(pg_server, data_dir, tmp_path_factory):
    # The bot answers 40 users at once below: over Telegram's global flood limit.
    async with running_sandbox(tmp_path_factory.mktemp("bot-sandbox"), env=harness.MANY_CHATS_AT_ONCE) as sandbox:
        running, channel, client = await start_campaigns(
            pg_server, data_dir, payments_addr=f"127.0.0.1:{harness.free_port()}", grpc_deadline_ms=300,
            telegram_api_url=sandbox.api_url, telegram_bot_token=sandbox.token)
        try:
            yield BotWorld(client, sandbox, pg_server, client.engine.url.database, data_dir)
        finally:
            await channel.close()
            await client.engine.dispose()
            await running.stop(0.5)


def stop(process: subprocess.Popen, sig=signal.SIGTERM) -> None:
    if process.poll() is None:
        process.send_signal(sig)
        process.wait(15)


async def test_a_link_carries_a_single_use_code_and_the_bots_start_link(world):
    link = await world.campaigns.call("CreateTelegramLink", pb.CreateTelegramLinkRequest(), publisher())
    assert 16 <= len(link.code) <= 64 and link.start_link == f"https://t.me/adtech_sandbox_bot?start={link.code}"
    assert link.HasField("expires_at")


async def test_start_with_a_code_binds_the_sender_and_a_bad_code_or_a_taken_account_binds_nothing(world):
    alice, bob = publisher(), advertiser()
    alice_tg, stranger_tg = await world.sandbox.create_user("alice_tg"), await world.sandbox.create_user()
    code = await world.code_for(alice)
    bot = world.bot()
    try:
        await world.sandbox.send_message(alice_tg["id"], f"/start {code}")
        await world.sandbox.send_message(stranger_tg["id"], "/start not-a-code-of-ours-at-all")
        await world.sandbox.send_message(stranger_tg["id"], f"/start {code}")  # used already
        await world.sandbox.send_message(alice_tg["id"], f"/start {await world.code_for(bob)}")  # alice's account
        await eventually(lambda: world.texts(alice_tg["id"]), timeout=15)

        async def answered():
            return len(await world.texts(alice_tg["id"])) == 2 and len(await world.texts(stranger_tg["id"])) == 2
        await eventually(answered, timeout=15)
    finally:
        stop(bot)
    account = await world.linked(alice)
    assert (account.linked, account.telegram_user_id, account.username) == (True, alice_tg["id"], "alice_tg")
    assert not (await world.linked(bob)).linked
    alice_texts, stranger_texts = await world.texts(alice_tg["id"]), await world.texts(stranger_tg["id"])
    assert LINKED in alice_texts[-1] and "another platform user" in alice_texts[0]
    assert "not valid" in stranger_texts[-1] and USED_ALREADY in stranger_texts[0]


async def test_killing_the_bot_mid_stream_and_restarting_it_handles_every_update_exactly_once(world):
    people = [publisher() for _ in range(120)]  # many: the kill must land mid-stream even on a slow machine
    accounts = [await world.sandbox.create_user() for _ in people]
    for person, account in zip(people, accounts):
        await world.sandbox.send_message(account["id"], f"/start {await world.code_for(person)}")

    async def handled() -> int:
        return await world.campaigns.scalar("SELECT count(*) FROM bot_updates")
    before = await handled()
    bot = world.bot()
    try:
        await eventually(lambda: _at_least(handled, before + 5), timeout=20, interval=0.005)
    finally:
        stop(bot, signal.SIGKILL)
    cut_at = await handled() - before
    assert cut_at < len(people), "the bot finished before it was killed: nothing was tested"
    bot = world.bot()
    try:
        await eventually(lambda: _at_least(handled, before + len(people)), timeout=30)

        async def all_answered():
            return all([await world.texts(a["id"]) for a in accounts])
        await eventually(all_answered, timeout=30)
    finally:
        stop(bot)
    for person, account in zip(people, accounts):
        assert (await world.linked(person)).telegram_user_id == account["id"]
        texts = await world.texts(account["id"])
        assert texts and all(LINKED in text for text in texts), texts  # never "used already": handled once
    assert await handled() == before + len(people)
    assert (await world.sandbox.updates())["pending"] == []


async def _at_least(read, value: int) -> bool:
    return await read() >= value


async def test_of_several_bot_processes_one_polls_and_each_update_is_handled_once(world):
    people = [publisher() for _ in range(10)]
    accounts = [await world.sandbox.create_user() for _ in people]
    bots = [world.bot() for _ in range(3)]
    try:
        await asyncio.sleep(1.5)  # one leads; the others wait for its lock
        for person, account in zip(people, accounts):
            await world.sandbox.send_message(account["id"], f"/start {await world.code_for(person)}")

        async def all_linked_and_told():
            return all([(await world.linked(p)).linked for p in people]) and \
                all([await world.texts(a["id"]) for a in accounts])
        await eventually(all_linked_and_told, timeout=30)
        leaders = await world.campaigns.scalar(
            """SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database
                WHERE l.locktype = 'advisory' AND l.granted AND l.classid = CAST(:kind AS oid) AND l.objid = 0
                  AND d.datname = current_database()""", kind=0x0AD7EE)
        assert leaders == 1
        stop(bots[0], signal.SIGKILL)  # whoever led, the others go on
        late = await world.sandbox.create_user()
        person = publisher()
        await world.sandbox.send_message(late["id"], f"/start {await world.code_for(person)}")

        async def late_linked():
            return (await world.linked(person)).linked
        await eventually(late_linked, timeout=30)
    finally:
        for bot in bots:
            stop(bot)
    for account in [*accounts, late]:  # told once, or again by a new leader after a kill: never "used already"
        texts = await world.texts(account["id"])
        assert texts and all(LINKED in text for text in texts), texts


async def awaiting_order(world, owner, owner_tg) -> tuple[pb.Channel, str]:
    """A channel `owner` owns (through the bot's link), without auto-accept,
    with an approved target whose post job awaits the owner."""
    handle = f"@bot_{new_id()[:8]}"
    await world.sandbox.set_member(handle, owner_tg["id"], "creator")
    channel = (await world.campaigns.call("CreateChannel", pb.CreateChannelRequest(
        title="Cats", handle=handle, price_per_post=900), owner)).channel
    channel = (await world.campaigns.call("ApproveChannel", pb.ApproveChannelRequest(channel_id=channel.id),
                                          harness_admin())).channel
    buyer = advertiser()
    campaign = await world.campaigns.campaign(buyer)
    target = await world.campaigns.target(buyer, campaign.id, channel.id, submit=True)
    decision = new_id()
    await world.campaigns.reserve(target.id, decision)
    job = (await world.campaigns.approve(target.id, decision)).post_job
    assert job.status == "awaiting_publisher"
    return channel, job.id


def harness_admin():
    from tests.integration.campaigns.conftest import admin
    return admin()


async def test_the_owner_gets_the_order_with_buttons_and_only_the_owners_account_can_answer(world):
    owner, owner_tg, old_tg = publisher(), await world.sandbox.create_user(), await world.sandbox.create_user()
    bot = world.bot()
    try:
        await world.sandbox.send_message(old_tg["id"], f"/start {await world.code_for(owner)}")
        await eventually(lambda: _linked_to(world, owner, old_tg["id"]), timeout=15)
        channel_handle_owner = old_tg
        await world.sandbox.set_member("@placeholder_never_used", old_tg["id"], "left")
        _, job_id = await awaiting_order(world, owner, channel_handle_owner)

        async def order():
            return [m for m in await world.sandbox.messages(old_tg["id"]) if m["buttons"]]
        [message] = await eventually(order, timeout=15)
        assert [b["text"] for b in message["buttons"]] == ["Accept", "Decline"]
        assert "Answer by" in message["text"]
        # The owner now binds another account: the first one is a stranger to the order.
        await world.sandbox.send_message(owner_tg["id"], f"/start {await world.code_for(owner)}")
        await eventually(lambda: _linked_to(world, owner, owner_tg["id"]), timeout=15)
        decline = next(b["callback_data"] for b in message["buttons"] if b["text"] == "Decline")
        await world.sandbox.press(old_tg["id"], message["message_id"], decline)

        async def answered_press():
            return [c for c in await world.sandbox.callbacks(old_tg["id"]) if c["answered"]]
        [press] = await eventually(answered_press, timeout=15)
        assert press["answer_text"] == "Only the channel's owner can answer this order."
        assert await world.campaigns.scalar("SELECT status FROM post_jobs WHERE id = :id", id=job_id) == \
            "awaiting_publisher"
    finally:
        stop(bot)


async def test_a_press_of_accept_by_the_owner_queues_the_post_and_the_message_shows_it(world):
    owner, owner_tg = publisher(), await world.sandbox.create_user()
    bot = world.bot()
    try:
        await world.sandbox.send_message(owner_tg["id"], f"/start {await world.code_for(owner)}")
        await eventually(lambda: _linked_to(world, owner, owner_tg["id"]), timeout=15)
        _, job_id = await awaiting_order(world, owner, owner_tg)

        async def order():
            return [m for m in await world.sandbox.messages(owner_tg["id"]) if m["buttons"]]
        [message] = await eventually(order, timeout=15)
        accept = next(b["callback_data"] for b in message["buttons"] if b["text"] == "Accept")
        await world.sandbox.press(owner_tg["id"], message["message_id"], accept)
        await world.sandbox.press(owner_tg["id"], message["message_id"], accept)  # twice: the second changes nothing

        async def queued():
            return await world.campaigns.scalar("SELECT status FROM post_jobs WHERE id = :id", id=job_id) == "queued"
        await eventually(queued, timeout=15)

        async def shown():
            [m] = [m for m in await world.sandbox.messages(owner_tg["id"]) if m["message_id"] == message["message_id"]]
            return m if m["edited"] else None
        edited = await eventually(shown, timeout=15)
        assert "accepted" in edited["text"] and edited["buttons"] == []

        async def both_answered():
            presses = await world.sandbox.callbacks(owner_tg["id"])
            return presses if len(presses) == 2 and all(p["answered"] for p in presses) else None
        presses = await eventually(both_answered, timeout=15)
        assert sorted(p["answer_text"] for p in presses)[0] == "Accepted."
        assert any("not awaiting" in p["answer_text"] for p in presses)
    finally:
        stop(bot)


async def _linked_to(world, actor, telegram_user_id: int) -> bool:
    return (await world.linked(actor)).telegram_user_id == telegram_user_id
