"""The Bot API methods the platform's processes call, answered as Telegram
answers them: `{"ok": true, "result": ...}` or `{"ok": false, "error_code":
N, "description": "...", "parameters": {...}}` with the same HTTP status,
so python-telegram-bot raises its real exception types. Channels and their
posts are here; private chats with users in sandbox/private.py, the update
queue behind getUpdates in sandbox/updates.py."""
import asyncio
import inspect
import json
import logging

from sandbox import media
from sandbox.answers import (CANT_DELETE, CHAT_NOT_FOUND, KICKED, MEMBERS_INACCESSIBLE, NO_RIGHTS, NOT_MEMBER,
                             NOT_MODIFIED, USER_NOT_FOUND, Refusal)
from sandbox.faults import BAD_GATEWAY, Faults
from sandbox.limits import Login
from sandbox.content import Content
from sandbox.people import USERNAME, People
from sandbox.private import PrivateChats, inline_keyboard
from sandbox.store import Channel, Post, Store
from sandbox.text import message_text
from sandbox.updates import LIMIT_MAX, Updates

log = logging.getLogger(__name__)

DELETE_WITHIN_S = 48 * 3600  # a bot deletes a message only while it is younger
# An administrator's rights in a channel, as the real server sends them
# (can_manage_voice_chats too, the old name of can_manage_video_chats), the
# current Bot API's included (tests/integration/telegram/botapi-spec).
CHANNEL_RIGHTS = ("can_manage_chat", "can_delete_messages", "can_manage_video_chats", "can_restrict_members",
                  "can_promote_members", "can_change_info", "can_invite_users", "can_post_stories",
                  "can_edit_stories", "can_delete_stories", "can_post_messages", "can_edit_messages",
                  "can_manage_direct_messages", "can_send_welcome_messages", "can_manage_voice_chats")
METHODS = ("getMe", "logOut", "close", "getChat", "getChatMember", "getChatAdministrators", "sendMessage",
           "sendPhoto", "editMessageText", "editMessageReplyMarkup", "deleteMessage", "answerCallbackQuery",
           "getUpdates", "deleteWebhook", "getWebhookInfo")


class BotApi:
    """One bot (the token's owner) in channels that exist on first mention,
    and in private chats with the sandbox's users."""

    def __init__(self, store: Store, token: str):
        self.store = store
        self.token = token
        self.bot_id = int(token.split(":", 1)[0])
        self.faults = Faults()
        self.clock = store.clock
        self.login = Login(store.clock)  # logOut and close
        self.people = People(store.db, store.clock)
        self.updates = Updates(store.db)
        self.content = Content(store.db, store.clock)  # posts' entities and buttons
        self.private = PrivateChats(self.people, self.updates, self.me(), self.content)
        self.methods = {name.lower(): getattr(self, "m_" + name) for name in METHODS}

    def me(self) -> dict:
        return {"id": self.bot_id, "is_bot": True, "first_name": "Sandbox bot", "username": "adtech_sandbox_bot",
                "can_join_groups": False, "can_read_all_group_messages": False, "supports_inline_queries": False}

    async def call(self, method: str, params: dict) -> tuple[int, dict | str]:
        """(HTTP status, body) for one Bot API call."""
        handler = self.methods.get(method.lower())
        if handler is None:
            return 404, {"ok": False, "error_code": 404, "description": "Not Found"}
        fault = self.faults.take(handler.__name__[2:], _chat_type(params))
        if fault and fault.kind == "429":
            return 429, {"ok": False, "error_code": 429, "description": f"Too Many Requests: retry after {fault.retry_after}",
                         "parameters": {"retry_after": fault.retry_after}}
        if fault and fault.kind == "500":
            return 500, {"ok": False, "error_code": 500, "description": "Internal Server Error"}
        if fault and fault.kind == "502":
            return 502, BAD_GATEWAY  # what the proxy in front of the Bot API sends: HTML
        try:
            result = handler(params)
            if inspect.isawaitable(result):  # getUpdates may wait
                result = await result
            status, answer = 200, {"ok": True, "result": result}
        except Refusal as refusal:
            status, answer = refusal.code, {"ok": False, "error_code": refusal.code, "description": refusal.description}
            if refusal.parameters:
                answer["parameters"] = refusal.parameters
        if fault:  # stall_after_post: done (and stored), whatever the answer, it is held back
            log.info("holding the answer to %s for %s s", method, fault.stall_s)
            await asyncio.sleep(fault.stall_s)
        return status, answer

    # ---- chats ---------------------------------------------------------
    def _chat(self, params: dict, *, action: str = "read") -> Channel:
        """The channel `chat_id` names, or the refusal Telegram would give
        to `action`: read, post (send) or edit (edit or delete a post)."""
        raw = str(params.get("chat_id", "")).strip()
        if not raw:
            raise Refusal(400, "Bad Request: chat_id is empty")
        if raw.startswith("@"):
            # Telegram knows no chat by a name it would never give out.
            channel = self.store.channel(raw) if USERNAME.fullmatch(raw[1:]) else None
        else:
            try:
                channel = self.store.channel_by_id(int(raw))
            except ValueError:
                raise Refusal(*CHAT_NOT_FOUND) from None
        if channel is None or channel.refuse == "not_found":
            raise Refusal(*CHAT_NOT_FOUND)
        if channel.refuse == "blocked":
            raise Refusal(*KICKED)
        if channel.refuse == "not_admin" and action != "read":
            raise Refusal(*NOT_MEMBER)  # a bot dismissed from a channel's administrators is no longer in it
        if channel.refuse == "no_post_rights" and action == "post":
            raise Refusal(*NO_RIGHTS)  # edits and deletes go by its other rights, which it has
        return channel

    @staticmethod
    def _chat_json(channel: Channel) -> dict:
        return {"id": channel.chat_id, "type": "channel", "title": channel.title, "username": channel.title}

    def m_getMe(self, params: dict) -> dict:
        return self.me()

    def m_logOut(self, params: dict) -> bool:
        self.login.log_out()
        return True

    def m_close(self, params: dict) -> bool:
        self.login.close()
        return True

    def m_getChat(self, params: dict) -> dict:
        user = self.private.chat(params.get("chat_id", ""))
        chat = self.private.chat_json(user) if user else self._chat_json(self._chat(params))
        return {**chat, "accent_color_id": 0, "max_reaction_count": 11,
                "accepted_gift_types": {"unlimited_gifts": False, "limited_gifts": False, "unique_gifts": False,
                                        "premium_subscription": False, "gifts_from_channels": False}}

    @staticmethod
    def _administrator(user: dict) -> dict:
        return {"status": "administrator", "user": user, "can_be_edited": False, "is_anonymous": False,
                **dict.fromkeys(CHANNEL_RIGHTS, True), "can_promote_members": False}

    @classmethod
    def _member_json(cls, user: dict, status: str) -> dict:
        if status == "administrator":
            return cls._administrator(user)
        if status == "creator":
            return {"status": "creator", "user": user, "is_anonymous": False}
        return {"status": status, "user": user}  # member, left

    def m_getChatMember(self, params: dict) -> dict:
        channel = self._chat(params)
        try:
            user_id = int(params.get("user_id", ""))
        except ValueError:
            raise Refusal(400, "Bad Request: invalid user_id specified") from None
        if user_id == self.bot_id:
            return self._bot_member(channel)
        if channel.refuse == "not_admin":  # a bot that is not an admin of a channel cannot see its members
            raise Refusal(*MEMBERS_INACCESSIBLE)
        user = self.people.user(user_id)
        if user is None:
            raise Refusal(*USER_NOT_FOUND)
        return self._member_json(self.private.user_json(user), self.people.status(channel.chat_id, user.id))

    def _bot_member(self, channel: Channel) -> dict:
        """The bot in the channel: left once dismissed (not_admin), an
        administrator without can_post_messages (no_post_rights), else an
        administrator that can post."""
        if channel.refuse == "not_admin":
            return self._member_json(self.me(), "left")
        member = self._member_json(self.me(), "administrator")
        return {**member, "can_post_messages": False} if channel.refuse == "no_post_rights" else member

    def m_getChatAdministrators(self, params: dict) -> list:
        channel = self._chat(params)
        if channel.refuse == "not_admin":  # a bot that is not an admin of a channel cannot see its members
            raise Refusal(*MEMBERS_INACCESSIBLE)
        users = [self._member_json(self.private.user_json(user), status)
                 for user, status in self.people.members(channel.chat_id) if status in ("creator", "administrator")]
        return [*users, self._bot_member(channel)]

    # ---- messages ------------------------------------------------------
    def _message(self, channel: Channel, post: Post) -> dict:
        message = {"message_id": post.message_id, "date": post.date, "chat": self._chat_json(channel),
                   "sender_chat": self._chat_json(channel)}
        content = self.content.post(channel.chat_id, post.message_id)
        if content.edit_date is not None:
            message["edit_date"] = content.edit_date
        if post.photo:
            message["photo"] = [{"file_id": media.file_id(channel.chat_id, post.message_id),
                                 "file_unique_id": f"s{post.message_id}", "width": 1280, "height": 720}]
            if post.text:
                message["caption"] = post.text
            if content.entities:
                message["caption_entities"] = content.entities
        else:
            message["text"] = post.text
            if content.entities:
                message["entities"] = content.entities
            if post.media_url:
                message["link_preview_options"] = {"url": post.media_url, "prefer_large_media": True,
                                                   "show_above_text": True}
        if content.keyboard:
            message["reply_markup"] = {"inline_keyboard": content.keyboard}
        return message

    def m_sendMessage(self, params: dict) -> dict:
        user = self.private.chat(params.get("chat_id", ""), sending=True)
        if user is not None:
            return self.private.send_message(user, params)
        channel = self._chat(params, action="post")
        text, keyboard = message_text(params), inline_keyboard(params.get("reply_markup"))
        preview = _json_param(params.get("link_preview_options")) or {}
        post = self.store.add_post(channel.chat_id, text.text, preview.get("url") or None)
        self.content.keep_post(channel.chat_id, post.message_id, text.entities, keyboard)
        return self._message(channel, post)

    def m_sendPhoto(self, params: dict) -> dict:
        channel = self._chat(params, action="post")
        photo = media.photo_url(self.store, params.get("photo"))  # a URL or a file_id the sandbox gave
        caption, keyboard = message_text(params, "caption"), inline_keyboard(params.get("reply_markup"))
        post = self.store.add_post(channel.chat_id, caption.text, photo, photo=True)
        self.content.keep_post(channel.chat_id, post.message_id, caption.entities, keyboard)
        return self._message(channel, post)

    def m_editMessageText(self, params: dict) -> dict:
        user = self.private.chat(params.get("chat_id", ""))
        if user is not None:
            return self.private.edit_text(user, params)
        if params.get("inline_message_id"):
            raise Refusal(400, "Bad Request: MESSAGE_ID_INVALID")
        self._chat(params, action="edit")
        raise Refusal(400, "Bad Request: message can't be edited")  # channel posts keep their text here

    def m_editMessageReplyMarkup(self, params: dict) -> dict:
        user = self.private.chat(params.get("chat_id", ""))
        if user is not None:
            return self.private.edit_markup(user, params)
        channel = self._chat(params, action="edit")
        post = self._live_post(channel, params, "Bad Request: message to edit not found")
        keyboard = inline_keyboard(params.get("reply_markup"))
        if keyboard == self.content.post(channel.chat_id, post.message_id).keyboard:
            raise Refusal(*NOT_MODIFIED)  # no markup on a post without buttons: the adapter's proof probe
        self.content.edit_keyboard(channel.chat_id, post.message_id, keyboard)  # none: its buttons go
        return self._message(channel, post)

    def m_deleteMessage(self, params: dict) -> bool:
        channel = self._chat(params, action="edit")
        post = self._live_post(channel, params, "Bad Request: message to delete not found")
        if self.clock.now() - post.date >= DELETE_WITHIN_S:
            raise Refusal(*CANT_DELETE)
        self.store.delete_post(channel.chat_id, post.message_id)
        return True

    def _live_post(self, channel: Channel, params: dict, missing: str) -> Post:
        try:
            message_id = int(params.get("message_id", ""))
        except ValueError:
            raise Refusal(400, "Bad Request: message identifier is not specified") from None
        post = self.store.post(channel.chat_id, message_id)
        if post is None or post.deleted:
            raise Refusal(400, missing)
        return post

    def m_answerCallbackQuery(self, params: dict) -> bool:
        return self.private.answer_callback(params)

    # ---- updates -------------------------------------------------------
    async def m_getUpdates(self, params: dict) -> list:
        offset = _int_param(params, "offset", 0)
        limit = min(max(_int_param(params, "limit", LIMIT_MAX), 1), LIMIT_MAX)
        timeout = max(_int_param(params, "timeout", 0), 0)
        allowed = params.get("allowed_updates")
        if isinstance(allowed, str):
            try:
                allowed = json.loads(allowed) if allowed.strip() else None
            except ValueError:
                allowed = 0  # refused below
        if allowed is not None and not (isinstance(allowed, list) and all(isinstance(k, str) for k in allowed)):
            raise Refusal(400, "Bad Request: can't parse allowed updates JSON object")
        return await self.updates.get(offset, limit, timeout, allowed)

    def m_deleteWebhook(self, params: dict) -> bool:
        if str(params.get("drop_pending_updates", "")).lower() in ("true", "1"):
            self.updates.forget_all()
        return True

    def m_getWebhookInfo(self, params: dict) -> dict:
        return {"url": "", "has_custom_certificate": False, "pending_update_count": self.updates.pending_count()}


def _chat_type(params: dict) -> str | None:
    """The type of the chat a call names: a user's id is a private chat, a
    negative id or an @handle a channel; None when it names none."""
    raw = str(params.get("chat_id", "")).strip()
    if not raw:
        return None
    return "private" if raw.isdigit() else "channel"


def _int_param(params: dict, name: str, default: int) -> int:
    value = params.get(name)
    if value in (None, ""):
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise Refusal(400, f"Bad Request: field \"{name}\" must be of type Integer") from None


def _json_param(value) -> dict | None:
    """A parameter that carries an object: JSON text in a form, an object in JSON."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise Refusal(400, "Bad Request: can't parse parameter as JSON") from None
    return value if isinstance(value, dict) else None
