"""Publishers who own their channels in Telegram, as the platform requires
before a listing (docs/design.md, "Who owns a channel, and who agrees"): a
Telegram user in the sandbox, made the chat's creator, whose account is
bound to the publisher by the bot's real handling of `/start <code>`."""
import itertools
import random

from adtech.campaigns.v1 import campaigns_pb2
from common.auth import Actor, acting_as
from common.timestamps import utcnow
from services.campaigns.usecases.conversations import Conversations, Incoming

# Update ids of our own, far above the sandbox's (which count from 1).
_UPDATE_IDS = itertools.count(10**12 + random.randrange(10**9) * 1000)


async def link_telegram(campaigns, servicer, sandbox, actor: Actor, username: str | None = None) -> dict:
    """Binds a new Telegram user of the sandbox to `actor`: the code from
    CreateTelegramLink, then the bot's handling of `/start <code>` on the
    campaigns service's own database (`servicer`: its CampaignsServicer).
    Returns the Telegram user."""
    user = await sandbox.create_user(username)
    with acting_as(actor):
        link = await campaigns.CreateTelegramLink(campaigns_pb2.CreateTelegramLinkRequest())
    await sandbox.send_message(user["id"], f"/start {link.code}")  # as in Telegram: the user wrote to the bot
    answer = await Conversations(servicer.accounts.db).handle(
        Incoming(next(_UPDATE_IDS), "message", user["id"], user.get("username"), f"/start {link.code}"), now=utcnow())
    assert answer and "now linked" in answer["text"], answer
    return user


class Owners:
    """Each publisher's Telegram account, linked once, made the creator of
    each channel it lists."""

    def __init__(self, campaigns, servicer, sandbox):
        self.campaigns, self.servicer, self.sandbox = campaigns, servicer, sandbox
        self.accounts: dict[str, dict] = {}

    async def own(self, publisher: Actor, handle: str, status: str = "creator") -> dict:
        if publisher.id not in self.accounts:
            self.accounts[publisher.id] = await link_telegram(self.campaigns, self.servicer, self.sandbox, publisher)
        user = self.accounts[publisher.id]
        await self.sandbox.set_member(handle, user["id"], status)
        return user
