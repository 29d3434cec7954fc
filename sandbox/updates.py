"""The bot's updates, queued as Telegram queues them for getUpdates: each
gets the next update_id (the counter is stored, so ids keep increasing
across a restart and a reset), stays pending until a getUpdates with a
higher offset confirms it, and is not created at all when the bot's
allowed_updates (the last list it gave) leaves its kind out.

One getUpdates may wait for updates (long polling); a second call while
one waits ends the waiting one with 409 Conflict, as Telegram does when two
bot instances poll."""
import asyncio
import json
import sqlite3

from sandbox.answers import POLL_CONFLICT, Refusal

KINDS = ("message", "callback_query")  # the updates the sandbox makes
# Telegram's default (an empty or never given allowed_updates): every kind but these.
NOT_BY_DEFAULT = ("chat_member", "message_reaction", "message_reaction_count")
LIMIT_MAX = 100


class Updates:
    def __init__(self, db: sqlite3.Connection):
        self.db = db
        self._waiting: asyncio.Future | None = None  # the long poll under way: woken with "new" or "conflict"

    # ---- the queue ---------------------------------------------------------
    def allowed_updates(self) -> list[str]:
        row = self.db.execute("SELECT value FROM bot_state WHERE key = 'allowed_updates'").fetchone()
        return json.loads(row[0]) if row else []

    def wants(self, kind: str) -> bool:
        allowed = self.allowed_updates()
        return kind in allowed if allowed else kind not in NOT_BY_DEFAULT

    def add(self, kind: str, payload: dict) -> int | None:
        """Queues `{"update_id": N, kind: payload}`: its id, or None when the
        bot's allowed_updates leaves the kind out (no update is made)."""
        if not self.wants(kind):
            return None
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            (update_id,) = self.db.execute(
                "INSERT INTO bot_state (key, value) VALUES ('last_update_id', '1') ON CONFLICT (key) DO UPDATE"
                " SET value = CAST(value AS INTEGER) + 1 RETURNING CAST(value AS INTEGER)").fetchone()
            self.db.execute("INSERT INTO pending_update (update_id, kind, body) VALUES (?, ?, ?)",
                            (update_id, kind, json.dumps({"update_id": update_id, kind: payload})))
        if self._waiting is not None and not self._waiting.done():
            self._waiting.set_result("new")
        return update_id

    def pending(self, limit: int = LIMIT_MAX) -> list[dict]:
        rows = self.db.execute("SELECT body FROM pending_update ORDER BY update_id LIMIT ?", (limit,))
        return [json.loads(body) for (body,) in rows]

    def pending_count(self) -> int:
        return self.db.execute("SELECT count(*) FROM pending_update").fetchone()[0]

    def forget_all(self) -> None:
        self.db.execute("DELETE FROM pending_update")

    def _confirm(self, offset: int) -> None:
        """Forgets every update below `offset`; a negative offset keeps only
        the last -offset updates."""
        if offset > 0:
            self.db.execute("DELETE FROM pending_update WHERE update_id < ?", (offset,))
        elif offset < 0:
            self.db.execute("DELETE FROM pending_update WHERE update_id NOT IN"
                            " (SELECT update_id FROM pending_update ORDER BY update_id DESC LIMIT ?)", (-offset,))

    def _set_allowed(self, allowed: list[str]) -> None:
        """The bot's new allowed_updates; pending updates of kinds it leaves out are dropped."""
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute("INSERT INTO bot_state (key, value) VALUES ('allowed_updates', ?)"
                            " ON CONFLICT (key) DO UPDATE SET value = excluded.value", (json.dumps(allowed),))
            for kind in KINDS:
                if not self.wants(kind):
                    self.db.execute("DELETE FROM pending_update WHERE kind = ?", (kind,))

    # ---- getUpdates ----------------------------------------------------------
    async def get(self, offset: int, limit: int, timeout: float, allowed: list[str] | None) -> list[dict]:
        """getUpdates: confirms below `offset`, then answers the pending
        updates from it (at most `limit`), waiting up to `timeout` seconds
        for one when there are none."""
        if self._waiting is not None and not self._waiting.done():
            self._waiting.set_result("conflict")  # the earlier poll answers 409
        if allowed is not None:
            self._set_allowed(allowed)
        self._confirm(offset)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, timeout)
        while True:
            updates = self.pending(limit)
            left = deadline - loop.time()
            if updates or left <= 0:
                return updates
            waiting = self._waiting = loop.create_future()
            try:
                woken = await asyncio.wait_for(asyncio.shield(waiting), left)
            except TimeoutError:
                return self.pending(limit)
            finally:
                if self._waiting is waiting:
                    self._waiting = None
            if woken == "conflict":
                raise Refusal(*POLL_CONFLICT)
