"""Telegram's limits on a bot's use of the Bot API, by the sandbox's clock
(sandbox/clock.py).

Flood control, after Telegram's bot FAQ ("My bot is hitting limits, how do
I avoid this?"): in one chat about one message a second (short bursts
tolerated), in one group or channel at most 20 messages a minute, and
about 30 messages a second in all. Each limit is a bucket of messages
that refills at its rate: a send while a bucket it draws on is empty
answers 429 "Too Many Requests: retry after N" with parameters.retry_after
N (and a Retry-After header), N the whole seconds until the bucket holds
a message again. Sends are sendMessage, sendPhoto, editMessageText and
editMessageReplyMarkup; only a call that succeeds draws on the buckets (a
refused one sent nothing), and a call met with 429 did nothing.

logOut and close (https://core.telegram.org/bots/api#logout): after logOut
the cloud Bot API answers 401 Unauthorized for ten minutes; close answers
429 in the first ten minutes after the bot was launched (here: the
sandbox's start, a reset, or the first call after a close)."""
import dataclasses
import math

from sandbox.answers import Refusal
from sandbox.clock import Clock

SENDS = frozenset({"sendmessage", "sendphoto", "editmessagetext", "editmessagereplymarkup"})
LOGGED_OUT_S = 600.0
CLOSE_AFTER_S = 600.0
KEEP_BUCKETS = 10_000  # idle per-chat buckets are forgotten past this many


def too_many(retry_after: int) -> tuple[int, dict]:
    """Telegram's flood-control answer: (status, body)."""
    return 429, {"ok": False, "error_code": 429, "description": f"Too Many Requests: retry after {retry_after}",
                 "parameters": {"retry_after": retry_after}}


@dataclasses.dataclass(frozen=True)
class FloodLimits:
    """The figures of flood control; 0 turns one limit off, `enabled`
    False all of them."""
    enabled: bool = True
    chat_per_s: float = 1.0  # one chat, sustained
    chat_burst: int = 5  # one chat: messages at once before chat_per_s applies
    channel_per_minute: int = 20  # one group or channel (a negative chat id)
    global_per_s: int = 30  # every chat together

    def as_json(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class _Bucket:
    size: float
    rate: float  # messages a second
    level: float
    at: float

    def refill(self, now: float) -> None:
        self.level = min(self.size, self.level + max(now - self.at, 0.0) * self.rate)
        self.at = max(now, self.at)

    def wait_s(self) -> float:
        return 0.0 if self.level >= 1 else (1 - self.level) / self.rate


class Flood:
    def __init__(self, limits: FloodLimits, clock: Clock):
        self.limits, self.clock = limits, clock
        self._buckets: dict[tuple[str, int | None], _Bucket] = {}

    def retry_after(self, method: str, chat_id: int | None) -> int | None:
        """Seconds to wait before this call may send, or None when it may now."""
        buckets = self._buckets_of(method, chat_id)
        if not buckets:
            return None
        now = self.clock.now()
        for bucket in buckets:
            bucket.refill(now)
        wait = max(bucket.wait_s() for bucket in buckets)
        return max(1, math.ceil(wait)) if wait > 0 else None

    def sent(self, method: str, chat_id: int | None) -> None:
        """A call that sent (or edited) a message draws on its buckets."""
        now = self.clock.now()
        for bucket in self._buckets_of(method, chat_id):
            bucket.refill(now)
            bucket.level -= 1
        if len(self._buckets) > KEEP_BUCKETS:  # a full bucket is the same as none
            for key, bucket in list(self._buckets.items()):
                bucket.refill(now)
                if bucket.level >= bucket.size:
                    del self._buckets[key]

    def clear(self) -> None:
        self._buckets.clear()

    def _buckets_of(self, method: str, chat_id: int | None) -> list[_Bucket]:
        limits = self.limits
        if not limits.enabled or method.lower() not in SENDS:
            return []
        wanted = [("all", None, limits.global_per_s, limits.global_per_s)]
        if chat_id is not None:
            wanted.append(("chat", chat_id, limits.chat_burst, limits.chat_per_s))
            if chat_id < 0:
                wanted.append(("channel", chat_id, limits.channel_per_minute, limits.channel_per_minute / 60))
        found = []
        for kind, key, size, rate in wanted:
            if size <= 0 or rate <= 0:
                continue  # that limit is off
            bucket = self._buckets.get((kind, key))
            if bucket is None:
                bucket = self._buckets[(kind, key)] = _Bucket(size, rate, size, self.clock.now())
            found.append(bucket)
        return found


class Login:
    """Whether the bot may use the API now: not for ten minutes after
    logOut; and when close may be called."""

    def __init__(self, clock: Clock):
        self.clock = clock
        self.launched_at: float | None = clock.now()
        self.logged_out_until: float | None = None

    def admit(self) -> bool:
        """False while logged out (the call is 401); a call after close
        launches the bot again."""
        now = self.clock.now()
        if self.logged_out_until is not None:
            if now < self.logged_out_until:
                return False
            self.logged_out_until = None
        if self.launched_at is None:
            self.launched_at = now
        return True

    def log_out(self) -> None:
        self.logged_out_until = self.clock.now() + LOGGED_OUT_S

    def close(self) -> None:
        """Closes the bot instance; 429 in its first ten minutes."""
        since = self.clock.now() - (self.launched_at or 0.0)
        if since < CLOSE_AFTER_S:
            wait = max(1, math.ceil(CLOSE_AFTER_S - since))
            raise Refusal(429, f"Too Many Requests: retry after {wait}", {"retry_after": wait})
        self.launched_at = None

    def reset(self) -> None:
        self.launched_at, self.logged_out_until = self.clock.now(), None
