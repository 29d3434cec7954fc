"""The sandbox's storage: one SQLite file (created 0600), so channels,
posts, users, the bot's private messages and pending updates survive a
restart. One process, one connection, every call short and synchronous on
the event loop: no two writes interleave.

The channels and their posts are here, with the media URLs marked
unreachable; Telegram users, their memberships and private chats are in
sandbox/people.py, the bot's update queue in sandbox/updates.py, the
sandbox's clock in sandbox/clock.py, each on this connection. The whole
schema is SCHEMA; `upgrade` brings a file an older sandbox made up to it."""
import dataclasses
import hashlib
import os
import pathlib
import sqlite3

from sandbox.clock import Clock

REFUSALS = ("not_found", "not_admin", "no_post_rights", "blocked")

SCHEMA = """
CREATE TABLE IF NOT EXISTS channel (
    username TEXT PRIMARY KEY,            -- lower case, without the @
    title TEXT NOT NULL,                  -- the handle as first seen
    chat_id INTEGER NOT NULL UNIQUE,
    refuse TEXT CHECK (refuse IN ('not_found', 'not_admin', 'no_post_rights', 'blocked')),
    last_message_id INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS post (
    chat_id INTEGER NOT NULL REFERENCES channel (chat_id) ON DELETE CASCADE,
    message_id INTEGER NOT NULL,
    text TEXT NOT NULL,
    media_url TEXT,                       -- the photo, or the link preview of a text post
    photo INTEGER NOT NULL DEFAULT 0,     -- 1: sent with sendPhoto, the text its caption
    date INTEGER NOT NULL,                -- unix seconds by the sandbox's clock, as Telegram gives it
    deleted_at INTEGER,
    PRIMARY KEY (chat_id, message_id)
);
CREATE TABLE IF NOT EXISTS telegram_user (
    id INTEGER PRIMARY KEY CHECK (id > 0),
    username TEXT UNIQUE COLLATE NOCASE,  -- without the @; NULL: none
    first_name TEXT NOT NULL,
    started INTEGER NOT NULL DEFAULT 0,   -- 1 once the user wrote to the bot: the bot may write back
    last_message_id INTEGER NOT NULL DEFAULT 0  -- the private chat's ids, shared by both sides
);
CREATE TABLE IF NOT EXISTS member (
    chat_id INTEGER NOT NULL REFERENCES channel (chat_id) ON DELETE CASCADE,
    user_id INTEGER NOT NULL REFERENCES telegram_user (id) ON DELETE CASCADE,
    status TEXT NOT NULL CHECK (status IN ('creator', 'administrator', 'member', 'left')),
    PRIMARY KEY (chat_id, user_id)
);
CREATE TABLE IF NOT EXISTS bot_message (  -- what the bot sent a user, in their private chat
    user_id INTEGER NOT NULL REFERENCES telegram_user (id) ON DELETE CASCADE,
    message_id INTEGER NOT NULL,
    text TEXT NOT NULL,
    keyboard TEXT,                        -- the inline keyboard's rows of buttons (JSON), or NULL
    date INTEGER NOT NULL,
    edit_date INTEGER,
    PRIMARY KEY (user_id, message_id)
);
CREATE TABLE IF NOT EXISTS callback (     -- button presses, and the bot's answers to them
    id TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES telegram_user (id) ON DELETE CASCADE,
    message_id INTEGER NOT NULL,
    data TEXT NOT NULL,
    date INTEGER NOT NULL,
    answered_at INTEGER,
    answer_text TEXT,
    show_alert INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS pending_update (  -- updates the bot has not confirmed yet
    update_id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,                   -- the update's field: message, callback_query
    body TEXT NOT NULL                    -- the Update object (JSON), update_id included
);
CREATE TABLE IF NOT EXISTS bot_state (   -- last_update_id and clock_offset (kept by reset), allowed_updates (JSON)
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS unreachable_media (  -- URLs sendPhoto cannot fetch (control API)
    url TEXT PRIMARY KEY
);
"""
# What a reset forgets, children first; bot_state's last_update_id stays, so
# update ids keep increasing for a poller that remembers its offset, and so
# does the clock's offset: the sandbox's time never runs back.
RESET_TABLES = ("callback", "bot_message", "member", "pending_update", "post", "telegram_user", "channel",
                "unreachable_media")
KEPT_STATE = ("last_update_id", "clock_offset")


@dataclasses.dataclass(frozen=True)
class Channel:
    username: str
    title: str
    chat_id: int
    refuse: str | None


@dataclasses.dataclass(frozen=True)
class Post:
    chat_id: int
    message_id: int
    text: str
    media_url: str | None
    photo: bool
    date: int
    deleted_at: int | None

    @property
    def deleted(self) -> bool:
        return self.deleted_at is not None

    def as_json(self) -> dict:
        return {"message_id": self.message_id, "text": self.text, "media_url": self.media_url,
                "photo": self.photo, "date": self.date, "deleted": self.deleted, "deleted_at": self.deleted_at}


def chat_id_for(username: str) -> int:
    """A stable channel id for a username, in Telegram's shape: -100 and ten
    digits (what follows -100 is the id in a t.me/c/<id>/<message> link)."""
    digest = int.from_bytes(hashlib.sha256(username.lower().encode()).digest()[:8], "big")
    return -(1_000_000_000_000 + 1_000_000_000 + digest % 9_000_000_000)


def open_database(path: pathlib.Path) -> sqlite3.Connection:
    """The sandbox's database, readable by its owner only (it holds what
    users wrote to the bot); created with the schema when missing."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    os.chmod(path, 0o600)  # a file an older sandbox created
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA foreign_keys = ON")
    db.execute("PRAGMA journal_mode = WAL")  # its -wal and -shm files take the file's mode
    db.executescript(SCHEMA)
    upgrade(db)
    return db


def upgrade(db: sqlite3.Connection) -> None:
    """A file an older sandbox made, brought up to SCHEMA: a channel's
    refuse took no no_post_rights. SQLite cannot change a CHECK in place, so
    the table is made again and its rows copied, with foreign keys off and
    the legacy rename (the posts and members keep referring to "channel")."""
    (sql,) = db.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'channel'").fetchone()
    if "no_post_rights" in sql:
        return
    create = next(part for part in SCHEMA.split(";") if "EXISTS channel (" in part)
    db.execute("PRAGMA foreign_keys = OFF")
    db.execute("PRAGMA legacy_alter_table = ON")
    try:
        db.execute("BEGIN IMMEDIATE")
        db.execute("ALTER TABLE channel RENAME TO channel_before_upgrade")
        db.execute(create)
        db.execute("INSERT INTO channel (username, title, chat_id, refuse, last_message_id)"
                   " SELECT username, title, chat_id, refuse, last_message_id FROM channel_before_upgrade")
        db.execute("DROP TABLE channel_before_upgrade")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    finally:
        db.execute("PRAGMA legacy_alter_table = OFF")
        db.execute("PRAGMA foreign_keys = ON")


class Store:
    def __init__(self, path: pathlib.Path):
        self.db = open_database(path)
        self.clock = Clock(self.db)

    def close(self) -> None:
        self.db.close()

    def channel(self, handle: str, *, create: bool = True) -> Channel | None:
        """The channel of `@handle`; any handle exists (created on first use)."""
        username = handle.lstrip("@").lower()
        if create:
            self.db.execute("INSERT INTO channel (username, title, chat_id) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                            (username, handle.lstrip("@"), chat_id_for(username)))
        row = self.db.execute("SELECT username, title, chat_id, refuse FROM channel WHERE username = ?",
                              (username,)).fetchone()
        return Channel(*row) if row else None

    def channel_by_id(self, chat_id: int) -> Channel | None:
        row = self.db.execute("SELECT username, title, chat_id, refuse FROM channel WHERE chat_id = ?",
                              (chat_id,)).fetchone()
        return Channel(*row) if row else None

    def channels(self) -> list[Channel]:
        rows = self.db.execute("SELECT username, title, chat_id, refuse FROM channel ORDER BY username")
        return [Channel(*row) for row in rows]

    def set_refuse(self, handle: str, mode: str | None) -> Channel:
        channel = self.channel(handle)
        self.db.execute("UPDATE channel SET refuse = ? WHERE chat_id = ?", (mode, channel.chat_id))
        return dataclasses.replace(channel, refuse=mode)

    def add_post(self, chat_id: int, text: str, media_url: str | None, *, photo: bool = False) -> Post:
        """Stores a post under the channel's next message id, in one transaction."""
        now = self.clock.unix()
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            (message_id,) = self.db.execute(
                "UPDATE channel SET last_message_id = last_message_id + 1 WHERE chat_id = ? RETURNING last_message_id",
                (chat_id,)).fetchone()
            self.db.execute("INSERT INTO post (chat_id, message_id, text, media_url, photo, date)"
                            " VALUES (?, ?, ?, ?, ?, ?)", (chat_id, message_id, text, media_url, photo, now))
        return Post(chat_id, message_id, text, media_url, photo, now, None)

    def post(self, chat_id: int, message_id: int) -> Post | None:
        row = self.db.execute("SELECT chat_id, message_id, text, media_url, photo, date, deleted_at FROM post"
                              " WHERE chat_id = ? AND message_id = ?", (chat_id, message_id)).fetchone()
        return _post(row) if row else None

    def posts(self, chat_id: int) -> list[Post]:
        """Newest first."""
        rows = self.db.execute("SELECT chat_id, message_id, text, media_url, photo, date, deleted_at FROM post"
                               " WHERE chat_id = ? ORDER BY message_id DESC", (chat_id,))
        return [_post(row) for row in rows]

    def delete_post(self, chat_id: int, message_id: int) -> bool:
        """Marks the post deleted; False when there was no live post."""
        cursor = self.db.execute("UPDATE post SET deleted_at = ? WHERE chat_id = ? AND message_id = ?"
                                 " AND deleted_at IS NULL", (self.clock.unix(), chat_id, message_id))
        return cursor.rowcount == 1

    # ---- media URLs sendPhoto cannot fetch ----------------------------------
    def mark_unreachable(self, url: str) -> None:
        self.db.execute("INSERT INTO unreachable_media (url) VALUES (?) ON CONFLICT DO NOTHING", (url,))

    def unreachable(self, url: str) -> bool:
        return self.db.execute("SELECT 1 FROM unreachable_media WHERE url = ?", (url,)).fetchone() is not None

    def unreachable_urls(self) -> list[str]:
        return [url for (url,) in self.db.execute("SELECT url FROM unreachable_media ORDER BY url")]

    def clear_unreachable(self) -> None:
        self.db.execute("DELETE FROM unreachable_media")

    def reset(self) -> None:
        """Forgets every channel, post, user, membership, private message,
        pending update and unreachable URL, and the bot's allowed_updates."""
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            for table in RESET_TABLES:
                self.db.execute(f"DELETE FROM {table}")  # noqa: S608 (names from RESET_TABLES)
            self.db.execute(f"DELETE FROM bot_state WHERE key NOT IN ({', '.join('?' * len(KEPT_STATE))})",
                            KEPT_STATE)


def _post(row: tuple) -> Post:
    chat_id, message_id, text, media_url, photo, date, deleted_at = row
    return Post(chat_id, message_id, text, media_url, bool(photo), date, deleted_at)
