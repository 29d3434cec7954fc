"""The channel adapter: posts, admin checks and proof checks through the
Telegram Bot API with python-telegram-bot, for the publisher worker and the
channel approval (publication and proof in docs/design.md). `api_url` is
the Bot API base: production's https://api.telegram.org or the project's
sandbox (docs/sandbox.md); both answer the same methods, so the code path
is the same.

Errors: every Telegram or network error goes through `classify`, the one
table that tells a transient failure (retry) from a definite refusal:
- TransientChannelError: network errors and timeouts, 429 (flood control,
  `retry_after` set from Telegram's answer), 5xx. `maybe_delivered` is True
  when the request may have reached Telegram (a read timeout, a dropped
  connection): after a publish that means the post may be out.
- ChannelRefused: chat not found, the bot not an admin that can post,
  the bot kicked or blocked, any other bad request.
- TokenRejected (a ChannelRefused): Telegram refused the bot token (401/404
  on every method). Definite: no call succeeds until TELEGRAM_BOT_TOKEN is
  fixed; retrying cannot help.

Publishing with media: a photo goes out with sendPhoto and the text as its
caption. A caption holds at most 1024 characters; when the text is longer
the post is a sendMessage whose link preview shows the photo above the text
(link_preview_options.url = media_url), so the text is never cut and the
post is still one message with one id.

Proof (`is_up`): the Bot API has no "get message". The probe is
editMessageReplyMarkup(chat_id, message_id) with no markup, which changes
nothing on a post without buttons (ours have none): Telegram answers
400 "message is not modified" when the message exists and 400 "message to
edit not found" when it is gone. A channel that no longer exists means the
post is gone too; a bot that lost its admin rights or was kicked cannot
tell, and `is_up` raises ChannelRefused.

The token is never logged: it is part of every request URL, so the
loggers of httpx and python-telegram-bot that print URLs get a filter that
blanks it, and errors carry our own messages with it removed."""
import dataclasses
import datetime as dt
import logging
import re
import warnings

import httpx
from telegram import Bot, ChatMember, InlineKeyboardButton, InlineKeyboardMarkup, LinkPreviewOptions, Update
from telegram import error as tg
from telegram.request import HTTPXRequest

log = logging.getLogger(__name__)

CAPTION_LIMIT = 1024
TEXT_LIMIT = 4096
USERNAME = re.compile(r"[A-Za-z0-9_]{3,64}")

# Loggers that print request URLs, hence the token.
URL_LOGGERS = ("httpx", "telegram.Bot", "telegram.request.BaseRequest", "telegram.request.HTTPXRequest")
# A proxy's error page can be long: a message keeps its start.
MESSAGE_LIMIT = 300


class ChannelError(Exception):
    """A Bot API call did not do what was asked; `message` says why in
    words a person can act on."""

    def __init__(self, message: str, *, telegram_words: str | None = None):
        if len(message) > MESSAGE_LIMIT:
            message = message[:MESSAGE_LIMIT - 1] + "…"
        super().__init__(message)
        self.message = message
        self.telegram_words = telegram_words or message  # Telegram's own description, when it gave one


class TransientChannelError(ChannelError):
    """Worth retrying: the network, a timeout, flood control (429, wait
    `retry_after` seconds) or a server error. `maybe_delivered`: the request
    may have reached Telegram before it failed."""

    def __init__(self, message: str, retry_after: float | None = None, *, maybe_delivered: bool = False):
        super().__init__(message)
        self.retry_after = retry_after
        self.maybe_delivered = maybe_delivered


class ChannelRefused(ChannelError):
    """Definite: the same call will fail again (chat not found, the bot not
    an admin that can post, the bot kicked or blocked, a bad request)."""


class ChatNotFound(ChannelRefused):
    """Telegram knows no chat by that handle or id."""


class TokenRejected(ChannelRefused):
    """Telegram refused the bot token itself: no call can succeed until
    TELEGRAM_BOT_TOKEN is fixed."""


@dataclasses.dataclass(frozen=True)
class Posted:
    message_id: int
    url: str  # https://t.me/<username>/<message_id>


# What a definite refusal's description says (lower case), matched in order.
_NOT_FOUND = ("chat not found", "channel_invalid", "username_invalid", "username_not_occupied")
_NO_RIGHTS = ("not enough rights", "need administrator rights", "chat_admin_required",
              "have no rights to send", "not a member", "member list is inaccessible")
_GONE = ("message to edit not found", "message_id_invalid", "message not found")
_STILL_THERE = ("message is not modified", "message can't be edited")
# Failures before the request left this machine: Telegram never saw it.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


def classify(error: Exception) -> ChannelError:
    """The one place a Telegram or network error becomes a ChannelError.
    BadRequest and TimedOut are NetworkError subclasses in
    python-telegram-bot, so the order of the checks matters."""
    if isinstance(error, ChannelError):
        return error
    if isinstance(error, tg.RetryAfter):
        return TransientChannelError(f"Telegram's flood control: retry after {_seconds(error):g} s",
                                     retry_after=_seconds(error))
    if isinstance(error, tg.InvalidToken):
        # Its own text may hold the token (Bot.initialize puts it there).
        return TokenRejected("Telegram rejected the bot token (TELEGRAM_BOT_TOKEN),"
                             " or TELEGRAM_API_URL is not a Bot API")
    if isinstance(error, tg.Forbidden):
        return ChannelRefused(f"the bot may not do this: {error.message}", telegram_words=error.message)
    if isinstance(error, tg.ChatMigrated):
        return ChannelRefused(f"the chat moved to {error.new_chat_id}")
    if isinstance(error, tg.BadRequest):
        return ChannelRefused(f"Telegram refused the request: {error.message}", telegram_words=error.message)
    if isinstance(error, tg.TimedOut):
        return TransientChannelError(f"Telegram did not answer in time: {error.message}",
                                     maybe_delivered=not isinstance(error.__cause__, _NOT_SENT))
    if isinstance(error, tg.NetworkError):
        # A 5xx answer (Telegram answered, so the request arrived and was
        # not carried out: retried, as the design says; PTB raises it with
        # no cause, or with the JSON error of an HTML error page), or a
        # transport failure PTB wrapped (a dropped connection may have
        # delivered the request).
        cause = error.__cause__
        return TransientChannelError(f"Telegram could not be reached: {error.message}", maybe_delivered=(
            isinstance(cause, (httpx.TransportError, OSError)) and not isinstance(cause, _NOT_SENT)))
    if isinstance(error, (httpx.TransportError, OSError, TimeoutError)):
        return TransientChannelError(f"Telegram could not be reached: {error!r}",
                                     maybe_delivered=not isinstance(error, _NOT_SENT))
    if isinstance(error, tg.TelegramError):
        # Conflict, EndPointNotFound, an unparsable answer: a server that
        # misbehaves now may not later.
        return TransientChannelError(f"Telegram answered unexpectedly: {error.message}", maybe_delivered=True)
    raise TypeError(f"not a Telegram or network error: {error!r}") from error


def telegram_length(text: str) -> int:
    """A text's length as Telegram counts it against its limits: UTF-16
    code units of the text without its leading and trailing blanks (an
    emoji outside the basic plane counts two)."""
    return len(text.strip().encode("utf-16-le")) // 2


def _seconds(error: tg.RetryAfter) -> float:
    with warnings.catch_warnings():  # PTB 22 warns on reading an int retry_after
        warnings.simplefilter("ignore")
        value = error.retry_after
    return value.total_seconds() if isinstance(value, dt.timedelta) else float(value)


def _describes(error: ChannelError, phrases: tuple[str, ...]) -> bool:
    text = error.message.lower()
    return any(phrase in text for phrase in phrases)


def username_of(handle: str) -> str:
    """`@name` (or `name`, `t.me/name`) as Telegram's bare username."""
    name = handle.strip().removeprefix("https://").removeprefix("t.me/").lstrip("@")
    if not USERNAME.fullmatch(name):
        raise ChannelRefused(f"{handle!r} is not a channel username like @name")
    return name


class _HideToken(logging.Filter):
    def __init__(self, token: str):
        super().__init__()
        self.token = token

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if self.token in text:
            record.msg, record.args = text.replace(self.token, "<token>"), None
        return True


class TelegramChannels:
    """The Bot API for channels: one HTTP client for the process, opened by
    `start` (or `async with`) and closed by `close`."""

    def __init__(self, api_url: str, token: str, *, timeout_s: float = 10.0):
        if not token:
            raise ValueError("a bot token is required (TELEGRAM_BOT_TOKEN)")
        self._token = token
        self._timeout_s = timeout_s
        self._hide = _HideToken(token)
        # Before the Bot exists: its constructor logs the URL at DEBUG.
        for name in URL_LOGGERS:
            logging.getLogger(name).addFilter(self._hide)
        request = HTTPXRequest(connect_timeout=timeout_s, read_timeout=timeout_s, write_timeout=timeout_s,
                               pool_timeout=timeout_s, media_write_timeout=timeout_s)
        base = api_url.rstrip("/")
        self._bot = Bot(token, base_url=f"{base}/bot", base_file_url=f"{base}/file/bot", request=request,
                        get_updates_request=HTTPXRequest(connection_pool_size=1))
        self._bot_id: int | None = None

    async def start(self) -> None:
        """Opens the client and checks the token (getMe). A rejected token
        raises TokenRejected; Telegram out of reach is logged and the check
        runs again on first use."""
        try:
            await self._ready()
        except TransientChannelError as error:
            log.warning("Bot API not reachable at start, will retry on first use: %s", error.message)

    async def close(self) -> None:
        """Closes the client; safe to call twice, or after a failed start."""
        try:
            await self._bot.shutdown()
        finally:
            for name in URL_LOGGERS:
                logging.getLogger(name).removeFilter(self._hide)

    async def __aenter__(self) -> "TelegramChannels":
        try:
            await self.start()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def chat_of(self, handle: str) -> int:
        """The chat id of channel `handle` (getChat); ChatNotFound when
        Telegram knows none, ChannelRefused when it is not a channel."""
        name = username_of(handle)
        await self._ready()
        try:
            chat = await self._call(self._bot.get_chat, f"@{name}")
        except ChannelRefused as error:
            if isinstance(error, TokenRejected):
                raise
            if _describes(error, _NOT_FOUND):
                raise ChatNotFound(f"channel @{name} not found") from None
            # Kicked, blocked: Telegram's words in brackets.
            raise ChannelRefused(f"the bot is not an administrator of @{name} that can post messages"
                                 f" ({error.telegram_words})") from None
        if chat.type != chat.CHANNEL:
            raise ChannelRefused(f"@{name} is a {chat.type} chat, not a channel")
        return chat.id

    async def member_status(self, chat_id: int, user_id: int) -> str:
        """What Telegram says user `user_id` is in the chat: creator,
        administrator, member, restricted, left or kicked (getChatMember).
        A user Telegram does not know is `left`."""
        await self._ready()
        try:
            member = await self._call(self._bot.get_chat_member, chat_id, user_id)
        except ChannelRefused as error:
            if not isinstance(error, TokenRejected) and _describes(error, ("user not found", "participant_id_invalid")):
                return ChatMember.LEFT
            raise
        return member.status

    async def check_bot_posts(self, chat_id: int, name: str) -> None:
        """ChannelRefused unless the bot is the chat's creator or an
        administrator that can post messages."""
        bot_id = await self._ready()
        not_admin = f"the bot is not an administrator of @{name} that can post messages"
        try:
            member = await self._call(self._bot.get_chat_member, chat_id, bot_id)
        except ChannelRefused as error:
            if isinstance(error, TokenRejected):
                raise
            if _describes(error, _NOT_FOUND):
                raise ChatNotFound(f"channel @{name} not found") from None
            raise ChannelRefused(f"{not_admin} ({error.telegram_words})") from None  # kicked, blocked, no rights
        if member.status == ChatMember.OWNER:
            return
        if member.status != ChatMember.ADMINISTRATOR or not getattr(member, "can_post_messages", False):
            raise ChannelRefused(not_admin)

    async def chat_for_posting(self, handle: str) -> int:
        """The chat id of channel `handle` when the bot is an administrator
        of it that can post messages (getChat, then getChatMember)."""
        chat_id = await self.chat_of(handle)
        await self.check_bot_posts(chat_id, username_of(handle))
        return chat_id

    async def bot_username(self) -> str:
        """The bot's username (getMe), for its https://t.me/<username> links."""
        await self._ready()
        return self._bot.username

    # ---- the bot's conversations with users (services/campaigns/bot.py)
    async def updates(self, offset: int | None, timeout_s: int) -> list[Update]:
        """Long polling: updates from `offset` on (confirming every update
        before it), waiting up to `timeout_s` for one."""
        await self._ready()
        return list(await self._call(self._bot.get_updates, offset=offset, timeout=timeout_s,
                                     allowed_updates=["message", "callback_query"],
                                     read_timeout=timeout_s + self._timeout_s))

    async def send_to_user(self, user_id: int, text: str, buttons: list[tuple[str, str]] = ()) -> int:
        """A message to a user's private chat with the bot, with inline
        buttons (text, callback data) in one row; its message id."""
        await self._ready()
        markup = InlineKeyboardMarkup([[InlineKeyboardButton(label, callback_data=data) for label, data in buttons]]
                                      ) if buttons else None
        message = await self._call(self._bot.send_message, user_id, text[:TEXT_LIMIT], reply_markup=markup, sends=True)
        return message.message_id

    async def edit_user_message(self, user_id: int, message_id: int, text: str) -> None:
        """Replaces a message the bot sent a user (its buttons go)."""
        await self._ready()
        try:
            await self._call(self._bot.edit_message_text, text[:TEXT_LIMIT], chat_id=user_id, message_id=message_id)
        except ChannelRefused as error:
            if not _describes(error, _STILL_THERE):  # shown already: nothing to change
                raise

    async def answer_button(self, query_id: str, text: str) -> None:
        """The short notice a user sees after pressing a button."""
        await self._ready()
        await self._call(self._bot.answer_callback_query, query_id, text=text[:200])

    async def publish(self, chat_id: int, handle: str, text: str, media_url: str | None) -> Posted:
        """Sends the post: sendMessage, or sendPhoto with the text as its
        caption when there is a photo (a text past the caption limit goes
        as a message with the photo as its link preview, above the text)."""
        name = username_of(handle)
        length = telegram_length(text)
        if length > TEXT_LIMIT:
            raise ChannelRefused(f"the text is longer than Telegram's {TEXT_LIMIT} characters")
        await self._ready()
        if media_url and length <= CAPTION_LIMIT:
            message = await self._call(self._bot.send_photo, chat_id, media_url, caption=text or None, sends=True)
        elif media_url:
            preview = LinkPreviewOptions(url=media_url, prefer_large_media=True, show_above_text=True)
            message = await self._call(self._bot.send_message, chat_id, text, link_preview_options=preview, sends=True)
        else:
            message = await self._call(self._bot.send_message, chat_id, text, sends=True)
        return Posted(message_id=message.message_id, url=f"https://t.me/{name}/{message.message_id}")

    async def is_up(self, chat_id: int, message_id: int) -> bool:
        """True while the message is in the channel, False once it is
        definitely gone (see the module docstring for the probe)."""
        await self._ready()
        try:
            await self._call(self._bot.edit_message_reply_markup, chat_id=chat_id, message_id=message_id)
        except ChannelRefused as error:
            if _describes(error, _STILL_THERE):
                return True
            if _describes(error, _GONE + _NOT_FOUND):
                return False
            raise
        return True

    async def _ready(self) -> int:
        """The bot's user id; initializes the client and checks the token
        on first use."""
        if self._bot_id is None:
            await self._call(self._bot.initialize)
            self._bot_id = self._bot.id
        return self._bot_id

    async def _call(self, method, *args, sends: bool = False, **kwargs):
        """One Bot API call. Only a call that `sends` a post can have been
        carried out unseen: a read that timed out (getMe, getChat) delivered
        nothing, whatever the transport did."""
        try:
            return await method(*args, **kwargs)
        except Exception as error:  # noqa: BLE001 - classify decides, or raises TypeError
            classified = classify(error)
            if not sends and isinstance(classified, TransientChannelError):
                classified.maybe_delivered = False
            if self._token in classified.message or self._token in classified.telegram_words:
                classified.message = classified.message.replace(self._token, "<token>")
                classified.telegram_words = classified.telegram_words.replace(self._token, "<token>")
                classified.args = (classified.message,)
            # `from None`: the library's exception (and its chain) may quote the token.
            raise classified from None
