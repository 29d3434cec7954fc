"""What Telegram keeps with a message beside its text: the entities of the
text or caption (bold, links, ... read from its parse_mode) and, for a
channel post, its inline keyboard and when that was last edited. Kept in
tables of their own on the Store's connection, each row deleted with its
post or message (so a reset forgets them too)."""
import dataclasses
import json
import sqlite3

from sandbox.clock import Clock

SCHEMA = """
CREATE TABLE IF NOT EXISTS post_content (
    chat_id INTEGER NOT NULL,
    message_id INTEGER NOT NULL,
    entities TEXT,                        -- MessageEntity objects (JSON) of the text or caption, or NULL
    keyboard TEXT,                        -- the inline keyboard's rows of buttons (JSON), or NULL
    edit_date INTEGER,                    -- unix seconds of the last editMessageReplyMarkup
    PRIMARY KEY (chat_id, message_id),
    FOREIGN KEY (chat_id, message_id) REFERENCES post (chat_id, message_id) ON DELETE CASCADE
);
CREATE TABLE IF NOT EXISTS bot_message_entities (
    user_id INTEGER NOT NULL,
    message_id INTEGER NOT NULL,
    entities TEXT NOT NULL,               -- MessageEntity objects (JSON) of the message's text
    PRIMARY KEY (user_id, message_id),
    FOREIGN KEY (user_id, message_id) REFERENCES bot_message (user_id, message_id) ON DELETE CASCADE
);
"""


@dataclasses.dataclass(frozen=True)
class PostContent:
    entities: list[dict]
    keyboard: list[list[dict]] | None
    edit_date: int | None


class Content:
    def __init__(self, db: sqlite3.Connection, clock: Clock):
        self.db, self.clock = db, clock
        db.executescript(SCHEMA)

    # ---- channel posts -----------------------------------------------------
    def post(self, chat_id: int, message_id: int) -> PostContent:
        row = self.db.execute("SELECT entities, keyboard, edit_date FROM post_content WHERE chat_id = ?"
                              " AND message_id = ?", (chat_id, message_id)).fetchone()
        if row is None:
            return PostContent([], None, None)
        entities, keyboard, edit_date = row
        return PostContent(_load(entities) or [], _load(keyboard), edit_date)

    def keep_post(self, chat_id: int, message_id: int, entities: list[dict], keyboard: list | None) -> None:
        if entities or keyboard:
            self.db.execute("INSERT INTO post_content (chat_id, message_id, entities, keyboard) VALUES (?, ?, ?, ?)",
                            (chat_id, message_id, _dump(entities), _dump(keyboard)))

    def edit_keyboard(self, chat_id: int, message_id: int, keyboard: list | None) -> None:
        self.db.execute("INSERT INTO post_content (chat_id, message_id, keyboard, edit_date) VALUES (?, ?, ?, ?)"
                        " ON CONFLICT (chat_id, message_id) DO UPDATE SET keyboard = excluded.keyboard,"
                        " edit_date = excluded.edit_date", (chat_id, message_id, _dump(keyboard), self.clock.unix()))

    # ---- the bot's messages to users ------------------------------------------
    def message_entities(self, user_id: int, message_id: int) -> list[dict]:
        row = self.db.execute("SELECT entities FROM bot_message_entities WHERE user_id = ? AND message_id = ?",
                              (user_id, message_id)).fetchone()
        return _load(row[0]) if row else []

    def keep_message_entities(self, user_id: int, message_id: int, entities: list[dict]) -> None:
        """The message's entities now (an edit replaces them; none: forgotten)."""
        if entities:
            self.db.execute("INSERT INTO bot_message_entities (user_id, message_id, entities) VALUES (?, ?, ?)"
                            " ON CONFLICT (user_id, message_id) DO UPDATE SET entities = excluded.entities",
                            (user_id, message_id, _dump(entities)))
        else:
            self.db.execute("DELETE FROM bot_message_entities WHERE user_id = ? AND message_id = ?",
                            (user_id, message_id))


def _dump(value) -> str | None:
    return json.dumps(value) if value else None


def _load(text: str | None):
    return json.loads(text) if text else None
