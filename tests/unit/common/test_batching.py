"""A Batcher carries out concurrent requests together: a lone request
leaves at once; what queues behind the running batches leaves together,
at most max_size at a time and never two sharing a key; each caller gets
its own outcome, and no request is ever left waiting."""
import asyncio
import contextvars

import pytest
from hypothesis import given, settings, strategies as st

from common.batching import Batcher, Turns


class Recorder:
    """A `run` that records each batch it gets and answers each request
    with itself doubled, after a pause that lets others queue."""

    def __init__(self, pause_s: float = 0.01):
        self.batches: list[list] = []
        self.pause_s = pause_s

    async def __call__(self, batch: list) -> list:
        self.batches.append(list(batch))
        await asyncio.sleep(self.pause_s)
        return [request * 2 for request in batch]


async def test_a_lone_request_leaves_at_once_alone():
    run = Recorder()
    batcher = Batcher(run, max_size=10, max_running=1)
    assert await batcher.submit(4) == 8
    assert run.batches == [[4]]


async def test_requests_that_queue_behind_a_running_batch_leave_together():
    run = Recorder()
    batcher = Batcher(run, max_size=10, max_running=1)
    first = asyncio.ensure_future(batcher.submit(0))
    while not run.batches:  # until the first has left
        await asyncio.sleep(0)
    outcomes = await asyncio.gather(first, *(batcher.submit(n) for n in range(1, 7)))
    assert outcomes == [n * 2 for n in range(7)]
    # The first left alone; the six that arrived while it ran left as one.
    assert run.batches == [[0], [1, 2, 3, 4, 5, 6]]


async def test_no_more_than_max_running_batches_run_at_once_and_none_exceeds_max_size():
    running = peak = 0

    async def run(batch):
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.005)
        running -= 1
        assert len(batch) <= 4
        return batch

    batcher = Batcher(run, max_size=4, max_running=3)
    assert await asyncio.gather(*(batcher.submit(n) for n in range(50))) == list(range(50))
    assert peak == 3


async def test_requests_sharing_a_key_never_share_a_batch_and_keep_their_order():
    run = Recorder()
    batcher = Batcher(run, max_size=10, max_running=1, keys_of=lambda n: [n % 3])
    await asyncio.gather(*(batcher.submit(n) for n in range(10)))
    for batch in run.batches:
        assert len({n % 3 for n in batch}) == len(batch)
    # Each key's requests were carried out in the order they were asked.
    order = [n for batch in run.batches for n in batch]
    for key in range(3):
        mine = [n for n in order if n % 3 == key]
        assert mine == sorted(mine)


async def test_an_outcome_that_is_an_exception_reaches_only_its_caller():
    async def run(batch):
        return [ValueError(f"bad {n}") if n == 3 else n for n in batch]

    batcher = Batcher(run, max_size=10, max_running=1)
    outcomes = await asyncio.gather(*(batcher.submit(n) for n in range(6)), return_exceptions=True)
    assert [str(o) if isinstance(o, Exception) else o for o in outcomes] == [0, 1, 2, "bad 3", 4, 5]


async def test_a_batch_that_fails_fails_each_of_its_callers_and_the_next_batch_still_runs():
    calls = []

    async def run(batch):
        calls.append(batch)
        await asyncio.sleep(0.005)
        if len(calls) == 1:
            raise ConnectionResetError("lost the database")
        return batch

    batcher = Batcher(run, max_size=10, max_running=1)
    first = asyncio.ensure_future(batcher.submit("a"))
    await asyncio.sleep(0)
    rest = [asyncio.ensure_future(batcher.submit(x)) for x in "bcd"]
    with pytest.raises(ConnectionResetError):
        await first
    assert await asyncio.gather(*rest) == ["b", "c", "d"]


async def test_a_caller_that_stops_waiting_before_its_batch_leaves_is_dropped():
    run = Recorder(pause_s=0.02)
    batcher = Batcher(run, max_size=10, max_running=1)
    first = asyncio.ensure_future(batcher.submit(1))
    await asyncio.sleep(0)
    gone = asyncio.ensure_future(batcher.submit(2))
    stays = asyncio.ensure_future(batcher.submit(3))
    await asyncio.sleep(0)
    gone.cancel()
    assert (await first, await stays) == (2, 6)
    assert run.batches == [[1], [3]]


async def test_a_run_that_answers_the_wrong_number_of_outcomes_fails_its_callers():
    async def run(batch):
        return batch[:-1]

    batcher = Batcher(run, max_size=10, max_running=1)
    results = await asyncio.gather(batcher.submit(1), batcher.submit(2), batcher.submit(3), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)


async def test_batches_do_not_run_under_the_context_of_the_caller_that_started_the_runner():
    who = contextvars.ContextVar("who", default="nobody")
    seen = []

    async def run(batch):
        seen.append(who.get())
        return batch

    batcher = Batcher(run, max_size=10, max_running=1)

    async def as_caller(name):
        who.set(name)
        return await batcher.submit(name)

    assert await asyncio.gather(as_caller("first"), as_caller("second")) == ["first", "second"]
    assert seen == ["nobody"]


async def test_keys_that_cannot_be_computed_fail_that_request_alone_before_it_queues():
    def keys_of(request):
        if request == "bad":
            raise KeyError("no wallet in this request")
        return [request]

    batcher = Batcher(Recorder(), max_size=10, max_running=1, keys_of=lambda r: keys_of(r))
    results = await asyncio.gather(batcher.submit("a"), batcher.submit("bad"), batcher.submit("b"),
                                   return_exceptions=True)
    assert results[0] == "aa" and isinstance(results[1], KeyError) and results[2] == "bb"


def test_a_batcher_needs_room_for_one_request():
    with pytest.raises(ValueError):
        Batcher(Recorder(), max_size=0, max_running=1)
    with pytest.raises(ValueError):
        Batcher(Recorder(), max_size=1, max_running=0)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 3)), min_size=1, max_size=40),
       st.integers(1, 5), st.integers(1, 3), st.lists(st.integers(0, 2), min_size=1, max_size=10))
def test_every_request_gets_exactly_its_own_outcome_whatever_the_timing(arrivals, max_size, max_running, pauses):
    """Requests arrive at random moments (some exactly as a runner finds
    the queue empty and stops), keyed at random: each is answered once,
    with its own outcome; no batch breaks the size or key rules, and no
    key is in two batches running at once."""
    async def scenario():
        batches = []

        running: list = []

        async def run(batch):
            batches.append(batch)
            keys = [key for _, key in batch]
            assert not set(keys) & set(running), "a key in two running batches"
            running.extend(keys)
            for _ in range(pauses[len(batches) % len(pauses)]):
                await asyncio.sleep(0)
            for key in keys:
                running.remove(key)
            return [(request, "done") for request in batch]

        batcher = Batcher(run, max_size=max_size, max_running=max_running, keys_of=lambda r: [r[1]])

        async def arrive(i, delay, key):
            for _ in range(delay):
                await asyncio.sleep(0)
            return await batcher.submit((i, key))

        outcomes = await asyncio.wait_for(
            asyncio.gather(*(arrive(i, delay, key) for i, (delay, key) in enumerate(arrivals))), 5)
        assert outcomes == [((i, key), "done") for i, (_, key) in enumerate(arrivals)]
        carried = [request for batch in batches for request in batch]
        assert sorted(carried) == sorted((i, key) for i, (_, key) in enumerate(arrivals))
        for batch in batches:
            assert len(batch) <= max_size and len({key for _, key in batch}) == len(batch)

    asyncio.run(scenario())


async def test_a_key_is_never_in_two_running_batches_so_one_slow_key_occupies_one_runner():
    running_keys: list[str] = []
    overlaps = []

    async def run(batch):
        keys = [key for key, _ in batch]
        overlaps.extend(k for k in keys if k in running_keys)
        running_keys.extend(keys)
        await asyncio.sleep(0.4 if "slow" in keys else 0.001)
        for key in keys:
            running_keys.remove(key)
        return batch

    batcher = Batcher(run, max_size=10, max_running=3, keys_of=lambda r: [r[0]])
    slow = [asyncio.ensure_future(batcher.submit(("slow", n))) for n in range(2)]
    await asyncio.sleep(0.01)
    started = asyncio.get_running_loop().time()
    quick = await asyncio.gather(*(batcher.submit((f"k{n}", n)) for n in range(20)))
    # The quick keys went through on the runners the slow key did not take,
    # long before the slow key's first batch was done.
    assert asyncio.get_running_loop().time() - started < 0.3
    assert len(quick) == 20 and await asyncio.gather(*slow) == [("slow", n) for n in range(2)]
    assert overlaps == []


async def test_turns_let_one_caller_per_key_and_at_most_so_many_in_all_hold_a_turn():
    turns = Turns(at_once=2)
    holding: list[str] = []
    peak_total, same_key = 0, []

    async def use(key, hold_s):
        nonlocal peak_total
        async with turns.turn(key):
            same_key.extend(k for k in holding if k == key)
            holding.append(key)
            peak_total = max(peak_total, len(holding))
            await asyncio.sleep(hold_s)
            holding.remove(key)

    await asyncio.gather(*(use(key, 0.005) for key in "aaabbbcccd"))
    assert (peak_total, same_key) == (2, [])
    assert turns._keys == {}  # nothing kept once every caller is done


async def test_a_turn_given_up_while_waiting_frees_its_place():
    turns = Turns(at_once=1)
    async with turns.turn("a"):
        waiter = asyncio.ensure_future(turns.turn("a").__aenter__())
        await asyncio.sleep(0)
        waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    async with turns.turn("a"):
        pass
    assert turns._keys == {}
