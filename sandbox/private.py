"""The bot's private chats with Telegram users: what a user writes reaches
the bot as a `message` update, the bot answers with sendMessage (inline
keyboards included) and edits its messages, a press of one of its buttons
reaches it as a `callback_query` update, which it answers with
answerCallbackQuery. As on Telegram, the bot cannot write first: only to a
user who has written to it."""
import hashlib
import json
import re

from sandbox.answers import (CANT_INITIATE, CHAT_NOT_FOUND, EDIT_NOT_FOUND, NOT_MODIFIED, QUERY_INVALID, TO_BOTS,
                             ControlError, Refusal)
from sandbox.content import Content
from sandbox.people import BotMessage, People, User
from sandbox.text import TEXT_LIMIT, message_text
from sandbox.updates import Updates

CALLBACK_DATA_LIMIT = 64  # bytes
COMMAND = re.compile(r"/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{3,32})?(?=\s|$)")
BUTTON_ACTIONS = ("callback_data", "url", "web_app", "login_url", "switch_inline_query",
                  "switch_inline_query_current_chat", "switch_inline_query_chosen_chat", "copy_text",
                  "callback_game", "pay")


class PrivateChats:
    def __init__(self, people: People, updates: Updates, bot: dict, content: Content):
        self.people, self.updates, self.bot, self.content = people, updates, bot, content

    # ---- what Telegram shows the bot -------------------------------------
    @staticmethod
    def user_json(user: User) -> dict:
        found = {"id": user.id, "is_bot": False, "first_name": user.first_name, "language_code": "en"}
        return {**found, "username": user.username} if user.username else found

    @staticmethod
    def chat_json(user: User) -> dict:
        chat = {"id": user.id, "type": "private", "first_name": user.first_name}
        return {**chat, "username": user.username} if user.username else chat

    def message_json(self, user: User, message: BotMessage) -> dict:
        found = {"message_id": message.message_id, "from": self.bot, "chat": self.chat_json(user),
                 "date": message.date, "text": message.text}
        entities = self.content.message_entities(user.id, message.message_id)
        if entities:
            found["entities"] = entities
        if message.edit_date is not None:
            found["edit_date"] = message.edit_date
        if message.keyboard:
            found["reply_markup"] = {"inline_keyboard": message.keyboard}
        return found

    def chat(self, raw, *, sending: bool = False) -> User | None:
        """The user a positive `chat_id` names (their private chat with the
        bot); None for a channel's id or @handle."""
        text = str(raw).strip()
        if not text.isdigit():
            return None
        chat_id = int(text)
        if chat_id == self.bot["id"]:
            raise Refusal(*(TO_BOTS if sending else CHAT_NOT_FOUND))
        user = self.people.user(chat_id)
        if user is None:
            raise Refusal(*CHAT_NOT_FOUND)
        return user

    # ---- Bot API methods -------------------------------------------------
    def send_message(self, user: User, params: dict) -> dict:
        if not user.started:
            raise Refusal(*CANT_INITIATE)
        text = message_text(params)
        message = self.people.add_bot_message(user.id, text.text, inline_keyboard(params.get("reply_markup")))
        self.content.keep_message_entities(user.id, message.message_id, text.entities)
        return self.message_json(user, message)

    def edit_text(self, user: User, params: dict) -> dict:
        message = self._own_message(user, params)
        text, keyboard = message_text(params), inline_keyboard(params.get("reply_markup"))
        entities = self.content.message_entities(user.id, message.message_id)
        if (text.text, text.entities, keyboard) == (message.text, entities, message.keyboard):
            raise Refusal(*NOT_MODIFIED)  # as Telegram compares: the text, its formatting and the buttons
        edited = self.people.edit_bot_message(message, text.text, keyboard)
        self.content.keep_message_entities(user.id, message.message_id, text.entities)
        return self.message_json(user, edited)

    def edit_markup(self, user: User, params: dict) -> dict:
        message = self._own_message(user, params)
        keyboard = inline_keyboard(params.get("reply_markup"))
        if keyboard == message.keyboard:
            raise Refusal(*NOT_MODIFIED)
        return self.message_json(user, self.people.edit_bot_message(message, message.text, keyboard))

    def answer_callback(self, params: dict) -> bool:
        text = params.get("text")
        show_alert = str(params.get("show_alert", "")).lower() in ("true", "1")
        if not self.people.answer_callback(str(params.get("callback_query_id", "")), text and str(text), show_alert):
            raise Refusal(*QUERY_INVALID)
        return True

    def _own_message(self, user: User, params: dict) -> BotMessage:
        try:
            message_id = int(params.get("message_id", ""))
        except ValueError:
            raise Refusal(400, "Bad Request: message identifier is not specified") from None
        message = self.people.bot_message(user.id, message_id)
        if message is None:
            raise Refusal(*EDIT_NOT_FOUND)
        return message

    # ---- what users do (the control API) -----------------------------------
    def user_writes(self, user: User, text: str) -> dict:
        """The user sends the bot `text`: {"update_id", "message_id"}
        (update_id null when the bot's allowed_updates leaves messages out)."""
        if not text.strip() or len(text) > TEXT_LIMIT:
            raise ControlError(f"text is 1-{TEXT_LIMIT} characters")
        message_id = self.people.next_message_id(user.id, from_user=True)
        message = {"message_id": message_id, "from": self.user_json(user), "chat": self.chat_json(user),
                   "date": self.people.clock.unix(), "text": text}
        command = COMMAND.match(text)
        if command:
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": command.end()}]
        return {"update_id": self.updates.add("message", message), "message_id": message_id}

    def user_presses(self, user: User, message_id: int, data: str) -> dict:
        """The user presses the button of the bot's message that carries
        `data`: {"update_id", "callback_query_id"}."""
        message = self.people.bot_message(user.id, message_id)
        if message is None:
            raise ControlError("the bot sent that user no message with that id", 404)
        if data not in [button.get("callback_data") for button in message.buttons()]:
            raise ControlError("no button of that message carries that callback_data")
        press = self.people.add_callback(user.id, message_id, data)
        query = {"id": press.id, "from": self.user_json(user), "message": self.message_json(user, message),
                 "chat_instance": self._chat_instance(user), "data": data}
        return {"update_id": self.updates.add("callback_query", query), "callback_query_id": press.id}

    def _chat_instance(self, user: User) -> str:
        """A stable identifier of the chat the press came from, as a signed 64-bit number in text."""
        digest = hashlib.sha256(f"{self.bot['id']}:{user.id}".encode()).digest()[:8]
        return str(int.from_bytes(digest, "big", signed=True))


def inline_keyboard(value) -> list[list[dict]] | None:
    """The inline keyboard of a reply_markup parameter (JSON text in a form,
    an object in JSON): its rows of buttons, or None when there is none."""
    if isinstance(value, str):
        if not value:
            return None
        try:
            value = json.loads(value)
        except ValueError:
            raise Refusal(400, "Bad Request: can't parse reply keyboard markup JSON object") from None
    if not isinstance(value, dict) or "inline_keyboard" not in value:
        return None  # no markup, or a reply keyboard: nothing stays on the message
    rows = value["inline_keyboard"]
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise Refusal(400, "Bad Request: field \"inline_keyboard\" of the InlineKeyboardMarkup must be an Array of"
                           " Arrays")
    keyboard = [[_button(button) for button in row] for row in rows if row]
    return keyboard or None


def _button(button) -> dict:
    if not isinstance(button, dict) or not isinstance(button.get("text"), str):
        raise Refusal(400, "Bad Request: can't parse inline keyboard button: Field \"text\" must be of type String")
    actions = {key: button[key] for key in BUTTON_ACTIONS if key in button}
    if not actions:
        raise Refusal(400, "Bad Request: can't parse inline keyboard button: Text buttons are unallowed in the"
                           " inline keyboard")
    data = actions.get("callback_data")
    if data is not None and not (isinstance(data, str) and 1 <= len(data.encode()) <= CALLBACK_DATA_LIMIT):
        raise Refusal(400, "Bad Request: BUTTON_DATA_INVALID")
    return {"text": button["text"], **actions}
