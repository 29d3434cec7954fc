"""Telegram accounts: a user asks for a single-use code, the platform's bot
binds the Telegram user who sends `/start <code>` (services/campaigns/bot.py),
and the user reads or removes the binding (docs/design.md, "A Telegram
account per user"). One unit of work each."""
import dataclasses
import datetime as dt
import secrets

from common.auth import Actor
from common.db import Database, UnitOfWork
from common.errors import Unavailable
from services.campaigns import accounts_store as accounts
from services.campaigns.telegram import TelegramChannels, TransientChannelError, TokenRejected

CODE_BYTES = 24  # 32 url-safe characters: [A-Za-z0-9_-]{16,64}


@dataclasses.dataclass(frozen=True)
class Link:
    code: str
    start_link: str
    expires_at: dt.datetime


@dataclasses.dataclass(frozen=True)
class Binding:
    """What a `/start <code>` did, in words for the person who sent it."""
    bound: bool
    message: str


class TelegramAccounts:
    def __init__(self, db: Database, channels: TelegramChannels, *, link_ttl_s: int):
        self.db, self.channels, self.link_ttl_s = db, channels, link_ttl_s

    async def create_link(self, actor: Actor, *, now: dt.datetime) -> Link:
        """A single-use code, valid link_ttl_s, and the bot's start link carrying it."""
        try:
            bot = await self.channels.bot_username()
        except (TransientChannelError, TokenRejected) as error:
            raise Unavailable(f"The Telegram Bot API did not answer ({error.message}); try again") from None
        code = secrets.token_urlsafe(CODE_BYTES)
        expires_at = now + dt.timedelta(seconds=self.link_ttl_s)
        async with self.db.unit_of_work("create_telegram_link") as uow:
            await accounts.new_code(uow, code=code, user_id=actor.id, expires_at=expires_at)
            await uow.commit()
        return Link(code, f"https://t.me/{bot}?start={code}", expires_at)

    async def account(self, actor: Actor):
        """The actor's bound account, or None."""
        async with self.db.single_statement("read_telegram_account") as uow:
            return await accounts.account_of(uow, actor.id)

    async def unlink(self, actor: Actor) -> None:
        """Removes the binding; the user's channels stay, but publish only
        while an owner's account is bound and an administrator."""
        async with self.db.unit_of_work("unlink_telegram_account") as uow:
            await accounts.unbind(uow, actor.id)
            await uow.commit()


async def bind_by_code(uow: UnitOfWork, code: str, *, telegram_user_id: int, username: str | None,
                       now: dt.datetime) -> Binding:
    """`/start <code>` from a Telegram user, inside the bot's unit of work
    for that update: binds the user the code names, or says why not.
    Nothing is written when nothing is bound (the code stays usable when the
    account belongs to someone else: its owner may unbind it first)."""
    holder = await accounts.holder_of(uow, telegram_user_id)
    found = await accounts.code(uow, code)
    if found is None:
        return Binding(False, "This link is not valid. Ask the platform for a new one.")
    if holder is not None and str(holder) != str(found.user_id):
        return Binding(False, "This Telegram account is linked to another platform user already; unlink it"
                              " there first.")
    user_id = await accounts.use_code(uow, code, telegram_user_id=telegram_user_id, now=now)
    if user_id is None:
        why = "was used already" if found.used_at is not None else "has expired"
        return Binding(False, f"This link {why}. Ask the platform for a new one.")
    await accounts.bind(uow, user_id=str(user_id), telegram_user_id=telegram_user_id, username=username, now=now)
    return Binding(True, "Your Telegram account is now linked to the platform. You can list the channels you"
                         " administer, and you will get their orders here.")
