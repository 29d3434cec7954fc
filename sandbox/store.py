"""The sandbox's storage: channels and their posts in one SQLite file, so the
posts survive a restart. One process, one connection, every call short
and synchronous on the event loop: no two writes interleave."""
import dataclasses
import hashlib
import pathlib
import sqlite3
import time

REFUSALS = ("not_found", "not_admin", "blocked")

SCHEMA = """
CREATE TABLE IF NOT EXISTS channel (
    username TEXT PRIMARY KEY,            -- lower case, without the @
    title TEXT NOT NULL,                  -- the handle as first seen
    chat_id INTEGER NOT NULL UNIQUE,
    refuse TEXT CHECK (refuse IN ('not_found', 'not_admin', 'blocked')),
    last_message_id INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS post (
    chat_id INTEGER NOT NULL REFERENCES channel (chat_id) ON DELETE CASCADE,
    message_id INTEGER NOT NULL,
    text TEXT NOT NULL,
    media_url TEXT,                       -- the photo, or the link preview of a text post
    photo INTEGER NOT NULL DEFAULT 0,     -- 1: sent with sendPhoto, the text its caption
    date INTEGER NOT NULL,                -- unix seconds, as Telegram gives it
    deleted_at INTEGER,
    PRIMARY KEY (chat_id, message_id)
);
"""


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
    """A stable channel id for a username, in Telegram's shape -100xxxxxxxxxx."""
    digest = int.from_bytes(hashlib.sha256(username.lower().encode()).digest()[:8], "big")
    return -(1_000_000_000_000 + digest % 1_000_000_000_000)


class Store:
    def __init__(self, path: pathlib.Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA foreign_keys = ON")
        self.db.execute("PRAGMA journal_mode = WAL")
        self.db.executescript(SCHEMA)

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
        now = int(time.time())
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
                                 " AND deleted_at IS NULL", (int(time.time()), chat_id, message_id))
        return cursor.rowcount == 1

    def reset(self) -> None:
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute("DELETE FROM post")
            self.db.execute("DELETE FROM channel")


def _post(row: tuple) -> Post:
    chat_id, message_id, text, media_url, photo, date, deleted_at = row
    return Post(chat_id, message_id, text, media_url, bool(photo), date, deleted_at)
