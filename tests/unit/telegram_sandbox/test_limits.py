"""Flood control's buckets and logOut/close by a clock the test holds
(sandbox/limits.py): the figures exactly, without real time passing."""
import pytest

from sandbox.answers import Refusal
from sandbox.limits import Flood, FloodLimits, Login

CHANNEL, USER = -1001234567890, 5551234


class HeldClock:
    def __init__(self):
        self.at = 1_760_000_000.0

    def now(self) -> float:
        return self.at


def sends(flood: Flood, chat_id: int | None, count: int, method: str = "sendMessage") -> list[int | None]:
    """The retry_after each of `count` sends meets (None: it went out)."""
    waits = []
    for _ in range(count):
        wait = flood.retry_after(method, chat_id)
        if wait is None:
            flood.sent(method, chat_id)
        waits.append(wait)
    return waits


def test_one_chat_takes_a_burst_of_five_then_one_a_second():
    clock = HeldClock()
    flood = Flood(FloodLimits(), clock)
    assert sends(flood, USER, 6) == [None] * 5 + [1]
    clock.at += 1
    assert sends(flood, USER, 2) == [None, 1]
    clock.at += 0.5
    assert sends(flood, USER, 1) == [1]  # half a message back: still a second to wait, rounded up


def test_a_channel_takes_twenty_in_any_minute_whatever_the_per_chat_pace():
    clock = HeldClock()
    flood = Flood(FloodLimits(), clock)
    went = []
    for second in range(70):  # one a second: the per-chat limit never bites
        if sends(flood, CHANNEL, 1) == [None]:
            went.append(second)
        clock.at += 1
    assert went == [*range(20), *range(60, 70)]
    assert Flood(FloodLimits(), clock).retry_after("sendMessage", CHANNEL) is None


def test_a_full_channel_waits_for_its_oldest_message_to_leave_the_minute():
    clock = HeldClock()
    flood = Flood(FloodLimits(chat_burst=0), clock)
    assert sends(flood, CHANNEL, 21) == [None] * 20 + [60]
    clock.at += 59.5
    assert sends(flood, CHANNEL, 1) == [1]
    clock.at += 0.5
    assert sends(flood, CHANNEL, 2) == [None, None]


def test_a_private_chat_has_no_per_minute_limit():
    clock = HeldClock()
    flood = Flood(FloodLimits(), clock)
    for _ in range(30):
        assert sends(flood, USER, 1) == [None]
        clock.at += 1


def test_reads_and_unknown_chats_count_only_where_they_should():
    flood = Flood(FloodLimits(global_per_s=2), HeldClock())
    assert sends(flood, USER, 5, "getChat") == [None] * 5  # not a send
    assert sends(flood, None, 3) == [None, None, 1]  # a chat it cannot name: the global limit alone


@pytest.mark.parametrize("limits", [FloodLimits(enabled=False), FloodLimits(chat_burst=0, channel_per_minute=0,
                                                                             global_per_s=0)])
def test_limits_switched_off_let_everything_through(limits):
    assert sends(Flood(limits, HeldClock()), CHANNEL, 100) == [None] * 100


def test_log_out_shuts_the_bot_out_for_ten_minutes():
    clock = HeldClock()
    login = Login(clock)
    login.log_out()
    clock.at += 599.9
    assert not login.admit()
    clock.at += 0.1
    assert login.admit()


def test_close_is_429_in_the_first_ten_minutes_and_the_next_call_launches_again():
    clock = HeldClock()
    login = Login(clock)
    clock.at += 100
    with pytest.raises(Refusal) as early:
        login.close()
    assert (early.value.code, early.value.parameters) == (429, {"retry_after": 500})
    clock.at += 500
    login.close()
    assert login.admit()
    with pytest.raises(Refusal):
        login.close()
