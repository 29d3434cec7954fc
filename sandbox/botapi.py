"""The Bot API methods the channel adapter uses, answered as Telegram
answers them: `{"ok": true, "result": ...}` or `{"ok": false, "error_code":
N, "description": "...", "parameters": {...}}` with the same HTTP status,
so python-telegram-bot raises its real exception types."""
import asyncio
import dataclasses
import json
import logging

from sandbox.store import Channel, Post, Store

log = logging.getLogger(__name__)

TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
FAULT_KINDS = ("429", "500", "502", "stall_after_post")

# Telegram's words for each refusal, per kind of call.
KICKED = (403, "Forbidden: bot was kicked from the channel chat")
NOT_FOUND = (400, "Bad Request: chat not found")
NO_RIGHTS = (400, "Bad Request: need administrator rights in the channel chat")
NOT_MODIFIED = (400, "Bad Request: message is not modified: specified new message content and reply markup are"
                     " exactly the same as a current content and reply markup of the message")
BAD_GATEWAY = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n"


class Refusal(Exception):
    """An error answer: Telegram's status code and description."""

    def __init__(self, code: int, description: str, parameters: dict | None = None):
        super().__init__(description)
        self.code, self.description, self.parameters = code, description, parameters


@dataclasses.dataclass
class Fault:
    kind: str  # one of FAULT_KINDS
    count: int  # calls left to fail
    retry_after: int = 5  # 429's retry_after, seconds
    stall_s: float = 30.0  # stall_after_post: how long the answer is held

    def as_json(self) -> dict:
        return dataclasses.asdict(self)


class Faults:
    """Faults armed for the next calls of a method ("*": any method), in the
    order they were armed; kept in memory, gone on restart or reset."""

    def __init__(self):
        self.armed: dict[str, list[Fault]] = {}

    def arm(self, method: str, fault: Fault) -> None:
        self.armed.setdefault(method, []).append(fault)

    def take(self, method: str) -> Fault | None:
        for key in (method, "*"):
            queue = self.armed.get(key)
            if queue:
                fault = queue[0]
                fault.count -= 1
                if fault.count <= 0:
                    queue.pop(0)
                return fault
        return None

    def as_json(self) -> dict:
        return {method: [fault.as_json() for fault in queue] for method, queue in self.armed.items() if queue}

    def clear(self) -> None:
        self.armed.clear()


class BotApi:
    """One bot (the token's owner) in channels that exist on first mention."""

    def __init__(self, store: Store, token: str):
        self.store = store
        self.token = token
        self.bot_id = int(token.split(":", 1)[0])
        self.faults = Faults()
        self.methods = {name.lower(): getattr(self, "m_" + name) for name in
                        ("getMe", "logOut", "close", "getChat", "getChatMember", "getChatAdministrators",
                         "sendMessage", "sendPhoto", "editMessageReplyMarkup", "deleteMessage")}

    def me(self) -> dict:
        return {"id": self.bot_id, "is_bot": True, "first_name": "Sandbox bot", "username": "adtech_sandbox_bot",
                "can_join_groups": False, "can_read_all_group_messages": False, "supports_inline_queries": False}

    async def call(self, method: str, params: dict) -> tuple[int, dict | str]:
        """(HTTP status, body) for one Bot API call."""
        handler = self.methods.get(method.lower())
        if handler is None:
            return 404, {"ok": False, "error_code": 404, "description": "Not Found"}
        fault = self.faults.take(handler.__name__[2:])
        if fault and fault.kind == "429":
            return 429, {"ok": False, "error_code": 429, "description": f"Too Many Requests: retry after {fault.retry_after}",
                         "parameters": {"retry_after": fault.retry_after}}
        if fault and fault.kind == "500":
            return 500, {"ok": False, "error_code": 500, "description": "Internal Server Error"}
        if fault and fault.kind == "502":
            return 502, BAD_GATEWAY  # what the proxy in front of the Bot API sends: HTML
        try:
            status, answer = 200, {"ok": True, "result": handler(params)}
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
        """The channel `chat_id` names, or the refusal Telegram would give."""
        raw = str(params.get("chat_id", "")).strip()
        if not raw:
            raise Refusal(400, "Bad Request: chat_id is empty")
        if raw.startswith("@"):
            channel = self.store.channel(raw)
        else:
            try:
                channel = self.store.channel_by_id(int(raw))
            except ValueError:
                raise Refusal(*NOT_FOUND) from None
        if channel is None or channel.refuse == "not_found":
            raise Refusal(*NOT_FOUND)
        if channel.refuse == "blocked":
            raise Refusal(*KICKED)
        if channel.refuse == "not_admin" and action == "post":
            raise Refusal(*NO_RIGHTS)
        return channel

    @staticmethod
    def _chat_json(channel: Channel) -> dict:
        return {"id": channel.chat_id, "type": "channel", "title": channel.title, "username": channel.title}

    def m_getMe(self, params: dict) -> dict:
        return self.me()

    def m_logOut(self, params: dict) -> bool:
        return True

    def m_close(self, params: dict) -> bool:
        return True

    def m_getChat(self, params: dict) -> dict:
        channel = self._chat(params)
        return {**self._chat_json(channel), "accent_color_id": 0, "max_reaction_count": 11,
                "accepted_gift_types": {"unlimited_gifts": False, "limited_gifts": False, "unique_gifts": False,
                                        "premium_subscription": False, "gifts_from_channels": False}}

    def _admin(self, channel: Channel) -> dict:
        rights = dict.fromkeys(("can_manage_chat", "can_delete_messages", "can_manage_video_chats",
                                "can_restrict_members", "can_promote_members", "can_change_info",
                                "can_invite_users", "can_post_stories", "can_edit_stories", "can_delete_stories",
                                "can_post_messages", "can_edit_messages"), True)
        return {"status": "administrator", "user": self.me(), "can_be_edited": False, "is_anonymous": False,
                **rights, "can_promote_members": False}

    def m_getChatMember(self, params: dict) -> dict:
        channel = self._chat(params)
        try:
            user_id = int(params.get("user_id", ""))
        except ValueError:
            raise Refusal(400, "Bad Request: invalid user_id specified") from None
        if user_id != self.bot_id:
            raise Refusal(400, "Bad Request: user not found")
        if channel.refuse == "not_admin":
            return {"status": "left", "user": self.me()}
        return self._admin(channel)

    def m_getChatAdministrators(self, params: dict) -> list:
        channel = self._chat(params)
        return [] if channel.refuse == "not_admin" else [self._admin(channel)]

    # ---- messages ------------------------------------------------------
    def _message(self, channel: Channel, post: Post) -> dict:
        message = {"message_id": post.message_id, "date": post.date, "chat": self._chat_json(channel),
                   "sender_chat": self._chat_json(channel)}
        if post.photo:
            message["photo"] = [{"file_id": f"sandbox-{channel.chat_id}-{post.message_id}",
                                 "file_unique_id": f"s{post.message_id}", "width": 1280, "height": 720}]
            if post.text:
                message["caption"] = post.text
        else:
            message["text"] = post.text
            if post.media_url:
                message["link_preview_options"] = {"url": post.media_url, "prefer_large_media": True,
                                                   "show_above_text": True}
        return message

    def m_sendMessage(self, params: dict) -> dict:
        channel = self._chat(params, action="post")
        text = str(params.get("text", ""))
        if not text.strip():
            raise Refusal(400, "Bad Request: message text is empty")
        if len(text) > TEXT_LIMIT:
            raise Refusal(400, "Bad Request: message is too long")
        preview = _json_param(params.get("link_preview_options")) or {}
        post = self.store.add_post(channel.chat_id, text, preview.get("url") or None)
        return self._message(channel, post)

    def m_sendPhoto(self, params: dict) -> dict:
        channel = self._chat(params, action="post")
        photo = params.get("photo")
        if not isinstance(photo, str) or not photo:
            photo = "attach://uploaded-file"  # an upload: kept as a marker, its bytes dropped
        caption = str(params.get("caption", ""))
        if len(caption) > CAPTION_LIMIT:
            raise Refusal(400, "Bad Request: message caption is too long")
        post = self.store.add_post(channel.chat_id, caption, photo, photo=True)
        return self._message(channel, post)

    def m_editMessageReplyMarkup(self, params: dict) -> dict:
        channel = self._chat(params, action="post")
        post = self._live_post(channel, params, "Bad Request: message to edit not found")
        markup = _json_param(params.get("reply_markup"))
        if not markup or not markup.get("inline_keyboard"):
            raise Refusal(*NOT_MODIFIED)  # posts here carry no buttons: removing none changes nothing
        return self._message(channel, post)

    def m_deleteMessage(self, params: dict) -> bool:
        channel = self._chat(params, action="post")
        post = self._live_post(channel, params, "Bad Request: message to delete not found")
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


def _json_param(value) -> dict | None:
    """A parameter that carries an object: JSON text in a form, an object in JSON."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise Refusal(400, "Bad Request: can't parse parameter as JSON") from None
    return value if isinstance(value, dict) else None
