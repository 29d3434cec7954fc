import asyncio

import pytest

from services.verify import verify
from tests.stack import Stack


@pytest.fixture(scope="module")
async def stack(pg_server, data_dir):
    running = await Stack(pg_server, data_dir).start()
    yield running
    await running.close()


@pytest.fixture
def world(stack):
    return stack.world()


class Gate:
    """Forwards calls to the real stub, holding `method` until opened: a
    slow network at an exact point of the saga."""

    def __init__(self, stub, method: str):
        self._stub, self._method = stub, method
        self.reached, self.opened = asyncio.Event(), asyncio.Event()

    def __getattr__(self, name):
        real = getattr(self._stub, name)
        if name != self._method:
            return real

        async def held(request, **kwargs):
            self.reached.set()
            await self.opened.wait()
            return await real(request, **kwargs)
        return held


@pytest.fixture
def gate(stack):
    """gate("payments", "HoldEscrow") holds that call of moderation's saga."""
    saga = stack.servicer("moderation").saga
    originals = {"payments": saga.payments, "campaigns": saga.campaigns}

    def install(peer: str, method: str) -> Gate:
        g = Gate(originals[peer], method)
        setattr(saga, peer, g)
        return g
    yield install
    for peer, stub in originals.items():
        setattr(saga, peer, stub)


async def assert_consistent(stack, *, expected: dict | None = None) -> None:
    """Cross-service invariants, once the outboxes have drained; `expected`:
    the violations a test made on purpose (check name → violations)."""
    from tests.harness import eventually
    from adtech.ops.v1 import ops_pb2
    from common.auth import SYSTEM, acting_as

    async def drained():
        with acting_as(SYSTEM):
            stats = [await s.GetOutboxStats(ops_pb2.GetOutboxStatsRequest()) for s in stack.ops().values()]
        return all(s.pending == 0 and s.dead == 0 for s in stats)
    await eventually(drained, timeout=20)
    checks = await verify(stack.campaigns, stack.payments, stack.moderation, stack.ops())
    failed = {c.name: c.violations for c in checks if not c.ok}
    assert failed == (expected or {})
