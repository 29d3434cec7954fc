"""Telegram's limits on a bot's use of the Bot API, by the sandbox's clock
(sandbox/clock.py).

Flood control, after Telegram's bot FAQ ("My bot is hitting limits, how do
I avoid this?"): in one chat about one message a second (short bursts
tolerated), in one group or channel at most 20 messages a minute, and
about 30 messages a second in all. One chat is a bucket (a burst of
messages, refilled at a steady pace); a channel and all chats together
are windows (at most N messages in any minute, in any second). A send
that one of them does not allow now answers 429 "Too Many Requests: retry
after N" with parameters.retry_after N (and a Retry-After header), N the
whole seconds until it does. Sends are sendMessage, sendPhoto,
editMessageText and editMessageReplyMarkup; only a call that succeeds
counts (a refused one sent nothing), and a call met with 429 did nothing.

logOut and close (https://core.telegram.org/bots/api#logout): after logOut
the cloud Bot API answers 401 Unauthorized for ten minutes; close answers
429 in the first ten minutes after the bot was launched (here: the
sandbox's start, a reset, or the first call after a close)."""
import collections
import dataclasses
import math

from sandbox.answers import Refusal
from sandbox.clock import Clock

SENDS = frozenset({"sendmessage", "sendphoto", "editmessagetext", "editmessagereplymarkup"})
LOGGED_OUT_S = 600.0
CLOSE_AFTER_S = 600.0
KEEP_LIMITERS = 10_000  # idle per-chat limits are forgotten past this many


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


class _Bucket:
    """Short bursts, then a steady pace: `size` messages at once, one more
    back every 1/`rate` seconds."""

    def __init__(self, size: int, rate: float, now: float):
        self.size, self.rate, self.level, self.at = size, rate, float(size), now

    def wait_s(self, now: float) -> float:
        self.level = min(self.size, self.level + max(now - self.at, 0.0) * self.rate)
        self.at = max(now, self.at)
        return 0.0 if self.level >= 1 else (1 - self.level) / self.rate

    def take(self, now: float) -> None:
        self.wait_s(now)
        self.level -= 1

    def idle(self, now: float) -> bool:
        self.wait_s(now)
        return self.level >= self.size


class _Window:
    """At most `count` messages in any `seconds`: Telegram's "20 messages
    per minute" read strictly (a bucket would let 40 through in the first
    minute)."""

    def __init__(self, count: int, seconds: float, now: float):
        self.count, self.seconds, self.times = count, seconds, collections.deque()

    def wait_s(self, now: float) -> float:
        while self.times and self.times[0] <= now - self.seconds:
            self.times.popleft()
        return 0.0 if len(self.times) < self.count else self.times[0] + self.seconds - now

    def take(self, now: float) -> None:
        self.wait_s(now)
        self.times.append(now)

    def idle(self, now: float) -> bool:
        self.wait_s(now)
        return not self.times


class Flood:
    def __init__(self, limits: FloodLimits, clock: Clock):
        self.limits, self.clock = limits, clock
        self._limiters: dict[tuple[str, int | None], _Bucket | _Window] = {}

    def retry_after(self, method: str, chat_id: int | None) -> int | None:
        """Seconds to wait before this call may send, or None when it may now."""
        now = self.clock.now()
        wait = max((limiter.wait_s(now) for limiter in self._limiters_of(method, chat_id)), default=0.0)
        return max(1, math.ceil(wait)) if wait > 0 else None

    def sent(self, method: str, chat_id: int | None) -> None:
        """A call that sent (or edited) a message counts against its limits."""
        now = self.clock.now()
        for limiter in self._limiters_of(method, chat_id):
            limiter.take(now)
        if len(self._limiters) > KEEP_LIMITERS:  # an idle one is the same as none
            for key, limiter in list(self._limiters.items()):
                if limiter.idle(now):
                    del self._limiters[key]

    def clear(self) -> None:
        self._limiters.clear()

    def _limiters_of(self, method: str, chat_id: int | None) -> list[_Bucket | _Window]:
        limits, now = self.limits, self.clock.now()
        if not limits.enabled or method.lower() not in SENDS:
            return []
        wanted = []
        if limits.global_per_s > 0:
            wanted.append((("all", None), lambda: _Window(limits.global_per_s, 1.0, now)))
        if chat_id is not None and limits.chat_burst > 0 and limits.chat_per_s > 0:
            wanted.append((("chat", chat_id), lambda: _Bucket(limits.chat_burst, limits.chat_per_s, now)))
        if chat_id is not None and chat_id < 0 and limits.channel_per_minute > 0:
            wanted.append((("channel", chat_id), lambda: _Window(limits.channel_per_minute, 60.0, now)))
        found = []
        for key, make in wanted:
            limiter = self._limiters.get(key)
            if limiter is None:
                limiter = self._limiters[key] = make()
            found.append(limiter)
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
