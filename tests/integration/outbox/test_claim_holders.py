"""A claim names its holder, the relay of one process: while the holder
lives its claims are never taken over, even past their lease (it renews
what it is delivering); once it is gone (its session ended: the process
died, or the database restarted) another relay takes its messages at its
next claim, not when the lease runs out."""
import asyncio

import sqlalchemy as sa

from common import outbox
from common.outbox import Relay, RelayPolicy
from tests.harness import eventually
from tests.integration.outbox.test_relay import Recorder, _is, db, put, running, stop  # noqa: F401 (db: fixture)

LONG_LEASE = RelayPolicy(poll_s=0.05, lease_s=600, backoff_base_s=0.01)


async def holder_sessions(db) -> int:
    async with db.single_statement("count_holder_locks") as uow:
        return (await uow.execute(sa.text(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = :ns AND granted"),
            {"ns": outbox.HOLDER_LOCKS})).scalar()


async def test_a_claim_of_a_live_holder_is_never_taken_over(db):
    holder, other = Relay(db, {"t": Recorder()}, LONG_LEASE), Relay(db, {"t": Recorder()}, LONG_LEASE)
    await holder.start()
    message = await put(db, claim=holder.claim)  # born claimed, not dispatched yet
    task = await running(other)
    await asyncio.sleep(0.4)  # eight claims of the other relay
    assert other.handlers["t"].calls[message.id] == 0
    assert await _is(db, message.id, "pending")
    await stop(task)
    await holder.stop()


async def test_the_claim_of_a_holder_whose_process_died_is_taken_over_within_a_poll(db):
    dead, survivor = Relay(db, {"t": Recorder()}, LONG_LEASE), Relay(db, {"t": Recorder()}, LONG_LEASE)
    await dead.start()
    message = await put(db, claim=dead.claim)
    dead._listener.terminate()  # the process is gone: its session ends with it, lease or not
    task = await running(survivor)
    await eventually(lambda: _is(db, message.id, "delivered"), timeout=3)
    await stop(task)
    assert survivor.handlers["t"].calls[message.id] == 1 and dead.handlers["t"].calls[message.id] == 0


async def test_a_live_holder_renews_what_it_is_delivering_past_its_lease(db):
    short = RelayPolicy(poll_s=0.05, lease_s=0.3, backoff_base_s=0.01)
    slow = Recorder(delay=1.2)  # four leases long
    holder, other = Relay(db, {"t": slow}, short), Relay(db, {"t": Recorder()}, short)
    holder_task = await running(holder)
    await eventually(lambda: _holding(holder))
    message = await put(db)
    await eventually(lambda: _delivering(slow, message.id), timeout=3)
    other_task = await running(other)
    await eventually(lambda: _is(db, message.id, "delivered"), timeout=5)
    await stop(other_task)
    await stop(holder_task)
    assert other.handlers["t"].calls[message.id] == 0 and slow.calls[message.id] == 1


async def test_a_holder_takes_its_lock_once_and_gives_it_back_when_it_stops(db):
    relay = Relay(db, {"t": Recorder()}, LONG_LEASE)
    before = await holder_sessions(db)
    await relay.start()
    await relay.start()
    assert await holder_sessions(db) == before + 1 and relay.claim.holder == relay.holder
    await relay.stop()
    assert await holder_sessions(db) == before and relay.claim.holder is None


async def _holding(relay: Relay) -> bool:
    return relay.claim.holder is not None


async def _delivering(recorder: Recorder, message_id: int) -> bool:
    return sum(recorder.in_flight.values()) > 0
