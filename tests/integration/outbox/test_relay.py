"""The outbox relay against real PostgreSQL: at-least-once delivery, one
message in flight per aggregate, leases, backoff, dead letters, LISTEN."""
import asyncio
import collections

import pytest
import sqlalchemy as sa

from common import outbox
from common.db import Database, database_url_for
from common.outbox import Relay, RelayPolicy
from tests.harness import eventually, fresh_database

FAST = RelayPolicy(backoff_base_s=0.01, backoff_cap_s=0.05, poll_s=0.05, lease_s=5, max_attempts=4)


@pytest.fixture
async def db(pg_server):
    """An outbox as a service has it: moderation's migrations create it."""
    name = await fresh_database(pg_server, "moderation")
    database = Database(database_url_for(pg_server, name))
    yield database
    await database.dispose()


async def put(db, topic="t", aggregate="a", payload=None, *, claim: outbox.Claim | None = None):
    async with db.unit_of_work("enqueue_for_test") as uow:
        message = await outbox.enqueue(uow, topic, aggregate, payload or {}, claim=claim)
        await uow.commit()
    return message


async def statuses(db) -> dict[int, str]:
    async with db.unit_of_work("read_statuses") as uow:
        return dict((await uow.execute(sa.text("SELECT id, status FROM outbox_messages"))).all())


class Recorder:
    def __init__(self, fail_times: int = 0, delay: float = 0.0):
        self.calls = collections.Counter()
        self.order: list[tuple[str, int]] = []
        self.in_flight = collections.Counter()
        self.overlap = False
        self.fail_times, self.delay = fail_times, delay

    async def __call__(self, message: outbox.Message) -> bool:
        self.in_flight[message.aggregate_id] += 1
        self.overlap |= self.in_flight[message.aggregate_id] > 1
        try:
            await asyncio.sleep(self.delay)
            self.calls[message.id] += 1
            if self.calls[message.id] <= self.fail_times:
                raise RuntimeError("peer unavailable")
            self.order.append((message.aggregate_id, message.payload.get("n", 0)))
            return False
        finally:
            self.in_flight[message.aggregate_id] -= 1


async def running(relay: Relay):
    return asyncio.create_task(relay.run())


async def stop(task):
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_committed_message_is_delivered_and_marked_delivered(db):
    handler = Recorder()
    task = await running(Relay(db, {"t": handler}, FAST))
    message = await put(db)
    await eventually(lambda: _is(db, message.id, "delivered"))
    await stop(task)
    assert handler.calls[message.id] == 1


async def test_message_of_a_rolled_back_transaction_is_never_delivered(db):
    handler = Recorder()
    task = await running(Relay(db, {"t": handler}, FAST))
    async with db.unit_of_work("abandoned") as uow:
        await outbox.enqueue(uow, "t", "a", {})
    await asyncio.sleep(0.3)
    await stop(task)
    assert handler.calls == {} and await statuses(db) == {}


async def test_failed_delivery_is_retried_until_it_succeeds(db):
    handler = Recorder(fail_times=2)
    task = await running(Relay(db, {"t": handler}, FAST))
    message = await put(db)
    await eventually(lambda: _is(db, message.id, "delivered"))
    await stop(task)
    assert handler.calls[message.id] == 3


async def test_message_is_dead_lettered_after_the_attempt_limit_and_can_be_requeued(db):
    handler = Recorder(fail_times=10**6)
    task = await running(Relay(db, {"t": handler}, FAST))
    message = await put(db)
    await eventually(lambda: _is(db, message.id, "dead"))
    assert handler.calls[message.id] == FAST.max_attempts
    handler.fail_times = 0
    async with db.unit_of_work("requeue") as uow:
        await uow.execute(sa.text("UPDATE outbox_messages SET status='pending', attempts=0 WHERE id=:i"), {"i": message.id})
        await uow.commit()
    await eventually(lambda: _is(db, message.id, "delivered"))
    await stop(task)


async def test_messages_of_one_aggregate_are_delivered_in_order_one_at_a_time(db):
    handler = Recorder(delay=0.005)
    for n in range(15):
        await put(db, aggregate="target-1", payload={"n": n})
        await put(db, aggregate="target-2", payload={"n": n})
    relays = [await running(Relay(db, {"t": handler}, FAST)) for _ in range(3)]
    await eventually(lambda: _all_delivered(db, 30))
    for task in relays:
        await stop(task)
    assert not handler.overlap
    for aggregate in ("target-1", "target-2"):
        assert [n for a, n in handler.order if a == aggregate] == list(range(15))


async def test_replicas_share_the_work_without_delivering_twice(db):
    handler = Recorder(delay=0.002)
    relays = [await running(Relay(db, {"t": handler}, FAST)) for _ in range(4)]
    for n in range(60):
        await put(db, aggregate=f"agg-{n}")
    await eventually(lambda: _all_delivered(db, 60))
    for task in relays:
        await stop(task)
    assert set(handler.calls.values()) == {1}


async def test_a_claim_naming_no_holder_is_picked_up_when_its_lease_expires(db):
    handler = Recorder()
    # Born claimed for 0.3 s by a dispatcher no relay can see alive or dead.
    message = await put(db, claim=outbox.Claim(None, 0.3))
    task = await running(Relay(db, {"t": handler}, FAST))
    await asyncio.sleep(0.15)
    assert handler.calls[message.id] == 0
    await eventually(lambda: _is(db, message.id, "delivered"))
    await stop(task)
    assert handler.calls[message.id] == 1


async def test_listen_notify_wakes_an_idle_relay_without_polling(db):
    handler = Recorder()
    slow_poll = RelayPolicy(poll_s=60)
    task = await running(Relay(db, {"t": handler}, slow_poll))
    await asyncio.sleep(0.2)  # the relay is now waiting on its wake event
    message = await put(db)
    await eventually(lambda: _is(db, message.id, "delivered"), timeout=3)
    await stop(task)


async def _is(db, message_id, status) -> bool:
    return (await statuses(db)).get(message_id) == status


async def _all_delivered(db, count) -> bool:
    values = list((await statuses(db)).values())
    return len(values) == count and set(values) == {"delivered"}


async def test_delivered_messages_older_than_the_retention_are_purged(db):
    handler = Recorder()
    relay = Relay(db, {"t": handler}, RelayPolicy(poll_s=0.05, retention_s=3600))
    task = await running(relay)
    old, recent = await put(db), await put(db)
    await eventually(lambda: _all_delivered(db, 2))
    await stop(task)
    async with db.unit_of_work("age_a_message") as uow:
        await uow.execute(sa.text("UPDATE outbox_messages SET delivered_at = now() - interval '2 hours' WHERE id = :i"),
                          {"i": old.id})
        await uow.commit()
    pending = await put(db, aggregate="other")
    assert await relay.purge_delivered() == 1
    assert set(await statuses(db)) == {recent.id, pending.id}
