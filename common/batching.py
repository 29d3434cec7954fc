"""Concurrent calls carried out together: a `Batcher` gathers the requests
that arrive while earlier ones are being carried out and hands them on as
one batch, so a burst costs one statement, one commit and one round trip
instead of one each.

No timer: a request that finds a runner free leaves at once, alone, so a
lone caller waits for nothing; only what queues behind `max_running`
batches in flight is gathered. A batch takes at most `max_size` requests
and never two that share a key (`keys_of`): one that shares a key with a
request already in the batch stays queued, in order, for the next one.

`run` gets the batch and returns one outcome per request, in order: a
value, or an exception for that request alone. An exception raised by
`run` itself goes to every request of the batch. A caller that stops
waiting (cancelled) before its batch leaves is dropped from the queue;
once its batch has left, what it asked for is carried out anyway and the
outcome is dropped."""
import asyncio
import collections
from collections.abc import Awaitable, Callable, Hashable, Iterable
from typing import Generic, TypeVar

Request = TypeVar("Request")
Outcome = TypeVar("Outcome")


class Batcher(Generic[Request, Outcome]):
    def __init__(self, run: Callable[[list[Request]], Awaitable[list[Outcome | BaseException]]], *,
                 max_size: int, max_running: int, keys_of: Callable[[Request], Iterable[Hashable]] = lambda _: ()):
        if max_size < 1 or max_running < 1:
            raise ValueError("a batcher needs max_size >= 1 and max_running >= 1")
        self._run, self._keys_of = run, keys_of
        self.max_size, self.max_running = max_size, max_running
        self._queue: collections.deque[tuple[Request, asyncio.Future]] = collections.deque()
        self._running = 0  # counted here, not by the tasks' done callbacks, which run later
        self._runners: set[asyncio.Task] = set()

    async def submit(self, request: Request) -> Outcome:
        """Carries out `request` in the next batch that can take it."""
        future = asyncio.get_running_loop().create_future()
        self._queue.append((request, future))
        if self._running < self.max_running:
            self._running += 1
            runner = asyncio.ensure_future(self._drain())
            self._runners.add(runner)
            runner.add_done_callback(self._runners.discard)
        return await future

    def _next_batch(self) -> list[tuple[Request, asyncio.Future]]:
        batch, taken, left = [], set(), collections.deque()
        while self._queue and len(batch) < self.max_size:
            request, future = self._queue.popleft()
            if future.done():  # its caller stopped waiting
                continue
            keys = set(self._keys_of(request))
            if keys & taken:
                left.append((request, future))
                continue
            taken |= keys
            batch.append((request, future))
        self._queue.extendleft(reversed(left))
        return batch

    async def _drain(self) -> None:
        """Runs batches while requests are queued; stops, in the same step
        as it finds the queue empty, so a request queued after that starts
        a runner of its own."""
        try:
            while batch := self._next_batch():
                await self._carry_out(batch)
        except asyncio.CancelledError:  # the process is stopping: nobody is left to run what waits
            for _, future in self._queue:
                future.cancel()
            self._queue.clear()
            raise
        finally:
            self._running -= 1

    async def _carry_out(self, batch: list[tuple[Request, asyncio.Future]]) -> None:
        try:
            outcomes = await self._run([request for request, _ in batch])
            if len(outcomes) != len(batch):
                raise RuntimeError(f"a batch of {len(batch)} came back with {len(outcomes)} outcomes")
        except asyncio.CancelledError:
            for _, future in batch:
                future.cancel()
            raise
        except Exception as error:  # handed to every caller of the batch
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        for (_, future), outcome in zip(batch, outcomes):
            if future.done():
                continue
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
