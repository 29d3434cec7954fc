"""Concurrent calls carried out together: a `Batcher` gathers the requests
that arrive while earlier ones are being carried out and hands them on as
one batch, so a burst costs one statement, one commit and one round trip
instead of one each.

No timer: a request that finds a runner free leaves at once, alone, so a
lone caller waits for nothing; only what queues behind `max_running`
batches in flight is gathered. A batch takes at most `max_size` requests
and never two that share a key (`keys_of`), and no request shares a key
with a batch running: one that does stays queued, in order, for a later
batch (so requests of one key are carried out one after the other, and
one slow key never occupies more than one runner).

`run` gets the batch and returns one outcome per request, in order: a
value, or an exception for that request alone. An exception raised by
`run` itself goes to every request of the batch. A caller that stops
waiting (cancelled) before its batch leaves is dropped from the queue;
once its batch has left, what it asked for is carried out anyway and the
outcome is dropped."""
import asyncio
import collections
import contextlib
import contextvars
import dataclasses
from collections.abc import Awaitable, Callable, Hashable, Iterable
from typing import Generic, TypeVar

Request = TypeVar("Request")
Outcome = TypeVar("Outcome")


@dataclasses.dataclass(eq=False)
class _Waiting:
    request: object
    keys: frozenset
    future: asyncio.Future


class Batcher(Generic[Request, Outcome]):
    def __init__(self, run: Callable[[list[Request]], Awaitable[list[Outcome | BaseException]]], *,
                 max_size: int, max_running: int, keys_of: Callable[[Request], Iterable[Hashable]] = lambda _: ()):
        if max_size < 1 or max_running < 1:
            raise ValueError("a batcher needs max_size >= 1 and max_running >= 1")
        self._run, self._keys_of = run, keys_of
        self.max_size, self.max_running = max_size, max_running
        self._queue: collections.deque[_Waiting] = collections.deque()
        self._running = 0  # counted here, not by the tasks' done callbacks, which run later
        self._in_flight: collections.Counter = collections.Counter()  # keys of the batches running
        self._runners: set[asyncio.Task] = set()

    async def submit(self, request: Request) -> Outcome:
        """Carries out `request` in the next batch that can take it."""
        loop = asyncio.get_running_loop()
        waiting = _Waiting(request, frozenset(self._keys_of(request)), loop.create_future())
        self._queue.append(waiting)
        if self._running < self.max_running:
            self._running += 1
            started = []
            # A context of its own: a runner carries out many callers'
            # requests, and must not run under the first one's (its request
            # id in the logs, its actor).
            runner = loop.create_task(self._drain(started), context=contextvars.Context())
            self._runners.add(runner)
            runner.add_done_callback(lambda task: self._runner_done(task, started))
        return await waiting.future

    def _runner_done(self, runner: asyncio.Task, started: list) -> None:
        self._runners.discard(runner)
        if not started:  # cancelled before its first step (the process is stopping): its `finally` never ran
            self._running -= 1
            self._cancel_queued()

    def _cancel_queued(self) -> None:
        """The process is stopping: nobody is left to run what waits."""
        for waiting in self._queue:
            waiting.future.cancel()
        self._queue.clear()

    def _next_batch(self) -> list[_Waiting]:
        """The oldest requests that share no key with each other or with a
        batch running; the others keep their place. A request left for a
        key in flight is taken by the runner of that key, which looks
        again when its batch is done."""
        batch, taken, left = [], set(), collections.deque()
        while self._queue and len(batch) < self.max_size:
            waiting = self._queue.popleft()
            if waiting.future.done():  # its caller stopped waiting
                continue
            if waiting.keys & taken or any(key in self._in_flight for key in waiting.keys):
                left.append(waiting)
                continue
            taken |= waiting.keys
            batch.append(waiting)
        self._queue.extendleft(reversed(left))
        return batch

    async def _drain(self, started: list) -> None:
        """Runs batches while requests are queued; stops, in the same step
        as it finds the queue empty, so a request queued after that starts
        a runner of its own."""
        started.append(True)
        try:
            while batch := self._next_batch():
                await self._carry_out(batch)
        except asyncio.CancelledError:
            self._cancel_queued()
            raise
        finally:
            self._running -= 1

    async def _carry_out(self, batch: list[_Waiting]) -> None:
        keys = [key for waiting in batch for key in waiting.keys]
        self._in_flight.update(keys)
        try:
            outcomes = await self._run([waiting.request for waiting in batch])
            if len(outcomes) != len(batch):
                raise RuntimeError(f"a batch of {len(batch)} came back with {len(outcomes)} outcomes")
        except asyncio.CancelledError:
            for waiting in batch:
                waiting.future.cancel()
            raise
        except Exception as error:  # handed to every caller of the batch
            for waiting in batch:
                _settle(waiting.future, error)
            return
        finally:
            self._in_flight.subtract(keys)
            self._in_flight = +self._in_flight  # drops the keys at zero
        for waiting, outcome in zip(batch, outcomes):
            _settle(waiting.future, outcome)


def _settle(future: asyncio.Future, outcome) -> None:
    if future.done():  # its caller stopped waiting after its batch left
        return
    if not isinstance(outcome, BaseException):
        future.set_result(outcome)
    elif isinstance(outcome, (StopIteration, StopAsyncIteration)):  # a future refuses these
        future.set_exception(RuntimeError(f"the batch answered {outcome!r}"))
    else:
        future.set_exception(outcome)


class Turns:
    """Waiting in turn, per key, for something scarce: at most one caller
    per key holds a turn (the others of that key wait here, holding
    nothing), and at most `at_once` turns are held in all."""

    def __init__(self, at_once: int):
        self._at_once = asyncio.Semaphore(at_once)
        self._keys: dict[Hashable, list] = {}  # key -> [lock, callers using it]

    @contextlib.asynccontextmanager
    async def turn(self, key: Hashable):
        entry = self._keys.setdefault(key, [asyncio.Lock(), 0])
        entry[1] += 1
        try:
            async with entry[0], self._at_once:
                yield
        finally:
            entry[1] -= 1
            if not entry[1]:
                del self._keys[key]
