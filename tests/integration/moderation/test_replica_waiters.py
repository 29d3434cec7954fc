"""An approve waiting on one moderation replica learns the end of a saga
another replica carried out: the end is announced to every replica
(NOTIFY), not only to waiters in the process that ran the last step."""
import asyncio

from services.moderation import store
from services.moderation.saga import DecisionSagas
from tests.integration.moderation.test_approve import approve


async def test_a_waiter_on_another_replica_is_answered_when_the_saga_ends(stack, world, gate):
    running = stack.servicer("moderation").saga  # the replica that runs the saga
    other = DecisionSagas(running.db, running.campaigns, running.payments, running.relay.policy)
    await other.relay.start()  # a second replica: its own relay and LISTEN session
    try:
        _, _, target = await world.ready_to_approve(price=1_000, funds=5_000)
        held = gate("campaigns", "ApproveTarget")  # the saga's last step waits for us
        started = (await approve(world, target.id, wait_ms=0)).decision
        await held.reached.wait()
        waiting = asyncio.ensure_future(other.wait_settled(started.decision_id, timeout_s=5))
        await asyncio.sleep(0.05)
        held.opened.set()
        ended = await waiting
        assert ended is not None and (ended.id, ended.status) == (started.decision_id, "approved")
    finally:
        await other.relay.stop()


async def test_a_waiter_answered_in_its_own_replica_reads_nothing_more(stack, world):
    saga = stack.servicer("moderation").saga
    _, _, target = await world.ready_to_approve(price=1_000, funds=5_000)
    reply = await approve(world, target.id)
    assert reply.settled and reply.decision.status == "approved"
    await asyncio.sleep(0.1)  # the announcement arrives after the in-process answer
    assert saga._reads == set() and reply.decision.decision_id not in saga._waiters


async def test_a_joiner_on_another_replica_is_answered_soon_when_the_running_one_answers_its_own(
        stack, world, gate):
    """The replica running the saga has an approve waiting, so it announces
    nothing; the joiner elsewhere reads the decision again as it waits."""
    running = stack.servicer("moderation").saga
    other = DecisionSagas(running.db, running.campaigns, running.payments, running.relay.policy)
    await other.relay.start()
    try:
        _, _, target = await world.ready_to_approve(price=1_000, funds=5_000)
        held = gate("campaigns", "ApproveTarget")
        first = asyncio.ensure_future(approve(world, target.id))  # waits on the running replica
        await held.reached.wait()
        decision_id = next(iter(running._waiters))

        async def read():
            async with running.db.single_statement("read_decision") as uow:
                return await store.get_decision(uow, decision_id)
        joined = asyncio.ensure_future(other.wait_settled(decision_id, timeout_s=10, recheck=read))
        await asyncio.sleep(0.05)
        opened_at = asyncio.get_running_loop().time()
        held.opened.set()
        ended = await joined
        assert ended is not None and ended.status == "approved"
        assert asyncio.get_running_loop().time() - opened_at < 2  # not the 10 s wait
        assert (await first).decision.status == "approved"
    finally:
        await other.relay.stop()
