"""The sandbox's time: this machine's clock plus an offset that tests move
forward through the control API (POST /sandbox/clock), never back. Every
time the sandbox gives or compares (a message's date, deleted_at, the
48-hour limit on deleting, flood control's windows, logOut's ten minutes)
is read here, so a test can let two days pass in a call. The offset is kept
in bot_state: a restart and a reset keep the time where it was."""
import sqlite3
import time

OFFSET_KEY = "clock_offset"
# How far ahead of this machine the sandbox may run: a century, so every
# date stays one Python and the clients can turn into a datetime.
MAX_AHEAD_S = 100 * 365 * 86400


class ClockError(ValueError):
    """A move that would turn the sandbox's time back."""


class Clock:
    def __init__(self, db: sqlite3.Connection):
        self.db = db
        row = db.execute("SELECT value FROM bot_state WHERE key = ?", (OFFSET_KEY,)).fetchone()
        self.offset = float(row[0]) if row else 0.0

    def now(self) -> float:
        """Unix seconds, sandbox time."""
        return time.time() + self.offset

    def unix(self) -> int:
        """Unix seconds as Telegram gives them: whole."""
        return int(self.now())

    def advance(self, seconds: float) -> float:
        """Moves the time `seconds` (>= 0) forward; the new time."""
        if not seconds >= 0:  # NaN too
            raise ClockError("the sandbox's time only moves forward: advance_s is at least 0")
        if not self.offset + seconds <= MAX_AHEAD_S:
            raise ClockError("the sandbox's time runs at most a hundred years ahead of this machine's")
        self._keep(self.offset + seconds)
        return self.now()

    def set(self, unix: float) -> float:
        """Moves the time forward to `unix`; refused if that is in its past."""
        now = self.now()
        if not unix >= now:
            raise ClockError(f"the sandbox's time only moves forward: it is {now:.0f} already")
        return self.advance(unix - now)

    def as_json(self) -> dict:
        now = self.now()
        return {"now": int(now), "offset_s": round(self.offset, 3)}

    def _keep(self, offset: float) -> None:
        self.db.execute("INSERT INTO bot_state (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE"
                        " SET value = excluded.value", (OFFSET_KEY, repr(offset)))
        self.offset = offset
