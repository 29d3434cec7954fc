"""Asking Telegram who owns a chat (docs/design.md, "Listing a channel"):
the publisher's bound account must be the chat's creator or an
administrator, and the bot must be able to post. Used by listing,
resubmitting and approving a channel."""
import dataclasses

from common.db import Database
from common.errors import PreconditionFailed, Unavailable
from common.reasons import Reason
from services.campaigns import accounts_store as accounts
from services.campaigns import domain, publication
from services.campaigns.telegram import (ChannelRefused, ChatNotFound, TelegramChannels, TokenRejected,
                                         TransientChannelError, username_of)


@dataclasses.dataclass(frozen=True)
class Ownership:
    chat_id: int
    telegram_user_id: int


async def prove_ownership(db: Database, channels: TelegramChannels, owner_id: str, handle: str) -> Ownership:
    """The chat and the owner's account when `owner_id` may list `handle`,
    else the refusal of API.md: not linked, chat not found, the bot cannot
    post (asked before the owner: see below), not an administrator."""
    async with db.single_statement("read_telegram_account") as uow:
        account = await accounts.account_of(uow, owner_id)
    if account is None:
        raise domain.not_linked()
    try:
        chat_id = await channels.chat_of(handle)
        # The bot first: a bot that is not an administrator of a channel
        # cannot see who is (Telegram: "member list is inaccessible").
        await channels.check_bot_posts(chat_id, username_of(handle))
        if await channels.member_status(chat_id, account.telegram_user_id) not in domain.CHAT_OWNERS:
            raise domain.not_channel_admin(handle)
    except TokenRejected:
        raise Unavailable("Telegram refused the bot's token; an operator must fix TELEGRAM_BOT_TOKEN") from None
    except ChatNotFound as error:
        raise PreconditionFailed(f"Telegram knows no channel {handle} ({error.message})",
                                 code=Reason.CHANNEL_NOT_FOUND) from None
    except ChannelRefused as error:
        raise publication.channel_refusal(error.message) from None
    except TransientChannelError as error:
        raise Unavailable(f"The Telegram Bot API did not answer ({error.message}); try again") from None
    return Ownership(chat_id, account.telegram_user_id)
