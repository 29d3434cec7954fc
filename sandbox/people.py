"""Telegram users of the sandbox and what they share with the bot: their
status in each channel, the messages the bot sent them in their private
chat (with its inline keyboard) and their presses of its buttons. Stored on
the Store's connection (tables in sandbox/store.py)."""
import dataclasses
import json
import re
import secrets
import sqlite3

from sandbox.answers import ControlError
from sandbox.clock import Clock

# A public username, a user's or a channel's, as Telegram allows one: 5-32
# letters, digits and single underscores, starting with a letter and not
# ending with an underscore.
USERNAME = re.compile(r"[A-Za-z](?:[A-Za-z0-9]|_(?!_)){3,30}[A-Za-z0-9]")
STATUSES = ("creator", "administrator", "member", "left")
USER_IDS = (1_000_000, 8_000_000_000)  # where new user ids are drawn from


@dataclasses.dataclass(frozen=True)
class User:
    id: int
    username: str | None
    first_name: str
    started: bool  # wrote to the bot at least once: the bot may write back

    def as_json(self) -> dict:
        return {"id": self.id, "username": self.username, "first_name": self.first_name}


@dataclasses.dataclass(frozen=True)
class BotMessage:
    user_id: int
    message_id: int
    text: str
    keyboard: list[list[dict]] | None  # rows of inline buttons
    date: int
    edit_date: int | None

    def buttons(self) -> list[dict]:
        return [button for row in self.keyboard or [] for button in row]

    def as_json(self) -> dict:
        buttons = [{"text": b["text"], "callback_data": b.get("callback_data"), **({"url": b["url"]} if "url" in b else {})}
                   for b in self.buttons()]
        return {"message_id": self.message_id, "text": self.text, "buttons": buttons, "date": self.date,
                "edited": self.edit_date is not None}


@dataclasses.dataclass(frozen=True)
class Callback:
    id: str
    user_id: int
    message_id: int
    data: str
    date: int
    answered_at: int | None
    answer_text: str | None
    show_alert: bool

    def as_json(self) -> dict:
        return {"callback_query_id": self.id, "data": self.data, "message_id": self.message_id, "date": self.date,
                "answered": self.answered_at is not None, "answer_text": self.answer_text,
                "show_alert": self.show_alert}


class People:
    def __init__(self, db: sqlite3.Connection, clock: Clock):
        self.db, self.clock = db, clock  # every date by the sandbox's clock

    # ---- users -----------------------------------------------------------
    def create_user(self, username: str | None, first_name: str | None, *, not_id: int) -> User:
        """A new user under a fresh random id (never `not_id`, the bot's)."""
        if username is not None and not USERNAME.fullmatch(username):
            raise ControlError("a username is 5-32 letters, digits or single _, starting with a letter and not"
                               " ending with _")
        name = first_name or username or "Sandbox user"
        while True:
            user_id = USER_IDS[0] + secrets.randbelow(USER_IDS[1] - USER_IDS[0])
            if user_id == not_id:
                continue
            try:
                self.db.execute("INSERT INTO telegram_user (id, username, first_name) VALUES (?, ?, ?)",
                                (user_id, username, name))
            except sqlite3.IntegrityError:
                if username is not None and self.db.execute(
                        "SELECT 1 FROM telegram_user WHERE username = ?", (username,)).fetchone():
                    raise ControlError(f"the username {username} is taken", 409) from None
                continue  # the id was taken: draw again
            return User(user_id, username, name, False)

    def user(self, user_id: int) -> User | None:
        row = self.db.execute("SELECT id, username, first_name, started FROM telegram_user WHERE id = ?",
                              (user_id,)).fetchone()
        return _user(row) if row else None

    def users(self) -> list[User]:
        rows = self.db.execute("SELECT id, username, first_name, started FROM telegram_user ORDER BY rowid")
        return [_user(row) for row in rows]

    def next_message_id(self, user_id: int, *, from_user: bool) -> int:
        """The private chat's next message id (both sides count on it); a
        message from the user opens the chat to the bot."""
        (message_id,) = self.db.execute(
            "UPDATE telegram_user SET last_message_id = last_message_id + 1, started = started OR ?"
            " WHERE id = ? RETURNING last_message_id", (from_user, user_id)).fetchone()
        return message_id

    # ---- channel members ---------------------------------------------------
    def set_status(self, chat_id: int, user_id: int, status: str) -> None:
        """A channel has one creator: a new one makes the old one an administrator."""
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            if status == "creator":
                self.db.execute("UPDATE member SET status = 'administrator' WHERE chat_id = ? AND status = 'creator'"
                                " AND user_id <> ?", (chat_id, user_id))
            self.db.execute("INSERT INTO member (chat_id, user_id, status) VALUES (?, ?, ?)"
                            " ON CONFLICT (chat_id, user_id) DO UPDATE SET status = excluded.status",
                            (chat_id, user_id, status))

    def status(self, chat_id: int, user_id: int) -> str:
        row = self.db.execute("SELECT status FROM member WHERE chat_id = ? AND user_id = ?",
                              (chat_id, user_id)).fetchone()
        return row[0] if row else "left"

    def members(self, chat_id: int) -> list[tuple[User, str]]:
        """(user, status) of every user set in the channel, the creator first."""
        rows = self.db.execute(
            "SELECT u.id, u.username, u.first_name, u.started, m.status FROM member m"
            " JOIN telegram_user u ON u.id = m.user_id WHERE m.chat_id = ?"
            " ORDER BY m.status <> 'creator', m.status <> 'administrator', u.rowid", (chat_id,))
        return [(_user(row[:4]), row[4]) for row in rows]

    # ---- the bot's messages to a user -------------------------------------
    def add_bot_message(self, user_id: int, text: str, keyboard: list | None) -> BotMessage:
        now = self.clock.unix()
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            message_id = self.next_message_id(user_id, from_user=False)
            self.db.execute("INSERT INTO bot_message (user_id, message_id, text, keyboard, date) VALUES (?, ?, ?, ?, ?)",
                            (user_id, message_id, text, _dump(keyboard), now))
        return BotMessage(user_id, message_id, text, keyboard, now, None)

    def bot_message(self, user_id: int, message_id: int) -> BotMessage | None:
        row = self.db.execute("SELECT user_id, message_id, text, keyboard, date, edit_date FROM bot_message"
                              " WHERE user_id = ? AND message_id = ?", (user_id, message_id)).fetchone()
        return _message(row) if row else None

    def bot_messages(self, user_id: int) -> list[BotMessage]:
        """Newest first."""
        rows = self.db.execute("SELECT user_id, message_id, text, keyboard, date, edit_date FROM bot_message"
                               " WHERE user_id = ? ORDER BY message_id DESC", (user_id,))
        return [_message(row) for row in rows]

    def edit_bot_message(self, message: BotMessage, text: str, keyboard: list | None) -> BotMessage:
        now = self.clock.unix()
        self.db.execute("UPDATE bot_message SET text = ?, keyboard = ?, edit_date = ? WHERE user_id = ?"
                        " AND message_id = ?", (text, _dump(keyboard), now, message.user_id, message.message_id))
        return dataclasses.replace(message, text=text, keyboard=keyboard, edit_date=now)

    # ---- button presses --------------------------------------------------
    def add_callback(self, user_id: int, message_id: int, data: str) -> Callback:
        query_id = str(secrets.randbits(63))  # Telegram's ids are long decimal strings
        now = self.clock.unix()
        self.db.execute("INSERT INTO callback (id, user_id, message_id, data, date) VALUES (?, ?, ?, ?, ?)",
                        (query_id, user_id, message_id, data, now))
        return Callback(query_id, user_id, message_id, data, now, None, None, False)

    def answer_callback(self, query_id: str, text: str | None, show_alert: bool) -> bool:
        """False when no unanswered press has that id (Telegram takes one answer)."""
        cursor = self.db.execute("UPDATE callback SET answered_at = ?, answer_text = ?, show_alert = ?"
                                 " WHERE id = ? AND answered_at IS NULL",
                                 (self.clock.unix(), text, show_alert, query_id))
        return cursor.rowcount == 1

    def callbacks(self, user_id: int) -> list[Callback]:
        """Newest first."""
        rows = self.db.execute("SELECT id, user_id, message_id, data, date, answered_at, answer_text, show_alert"
                               " FROM callback WHERE user_id = ? ORDER BY rowid DESC", (user_id,))
        return [Callback(*row[:7], bool(row[7])) for row in rows]


def _user(row: tuple) -> User:
    user_id, username, first_name, started = row
    return User(user_id, username, first_name, bool(started))


def _message(row: tuple) -> BotMessage:
    user_id, message_id, text, keyboard, date, edit_date = row
    return BotMessage(user_id, message_id, text, json.loads(keyboard) if keyboard else None, date, edit_date)


def _dump(keyboard: list | None) -> str | None:
    return json.dumps(keyboard) if keyboard else None
