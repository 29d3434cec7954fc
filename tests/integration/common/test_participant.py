"""A saga step, carried out by common/participant.py on real PostgreSQL.

The step here is a whole example of adding one: a table of orders, the step
"ship" (open → shipped), which is ONE statement built from common/steps.py's
blocks plus ONE entry in a step table with its judge. Everything the step
rules promise then holds without more code: decided once per decision, a
repeat answered from the record (refusals included), a decision id reused
on another target refused, and any number of concurrent calls ending with
one outcome."""
import asyncio
import uuid

import pytest
import sqlalchemy as sa

from common import steps
from common.db import Database, database_url_for, ensure_database
from common.errors import AlreadyExists
from common.participant import Participant, Step
from common.steps import StepRefused

SCHEMA = [
    "CREATE TABLE orders (id uuid PRIMARY KEY, status text NOT NULL)",
    """CREATE TABLE saga_steps (
        decision_id uuid NOT NULL, step text NOT NULL, target_id uuid NOT NULL, outcome text NOT NULL,
        detail jsonb NOT NULL DEFAULT '{}'::jsonb, created_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (decision_id, step))""",
]

# The one statement of the step.
SHIP = sa.text(f"""
    WITH {steps.PRIOR},
    moved AS (
        UPDATE orders SET status = 'shipped' WHERE id = :target_id AND status = 'open' AND {steps.NO_PRIOR}
        RETURNING id),
    step_record AS ({steps.record("moved", "'shipped'")})
    SELECT {steps.RETURNS} FROM (SELECT) AS one LEFT JOIN prior ON true""")


def judge_ship(order, params) -> StepRefused | None:
    if order.status == "open":
        return None
    return StepRefused(f"Order cannot be shipped from status {order.status}", code="order_not_open")


# The one entry in the step table.
STEPS = {"ship": Step("ship", frozenset({"shipped"}), SHIP, judge_ship)}


async def lock_order(uow, order_id: str):
    return (await uow.execute(sa.text("SELECT id, status FROM orders WHERE id = :id FOR UPDATE"),
                              {"id": order_id})).one_or_none()


@pytest.fixture
async def shop(pg_server):
    name = f"steps_t{uuid.uuid4().hex[:10]}"
    await ensure_database(pg_server, name)
    db = Database(database_url_for(pg_server, name), pool_size=8)
    async with db.unit_of_work("create_schema") as uow:
        for statement in SCHEMA:
            await uow.execute(sa.text(statement))
        await uow.commit()
    yield db, Participant(db, STEPS, lock_target=lock_order, target_missing="No such order")
    await db.dispose()


async def order(db: Database, status: str = "open") -> str:
    order_id = str(uuid.uuid4())
    async with db.single_statement("add_order") as uow:
        await uow.execute(sa.text("INSERT INTO orders (id, status) VALUES (:id, :status)"),
                          {"id": order_id, "status": status})
    return order_id


async def records(db: Database, decision_id: str) -> list:
    async with db.single_statement("read_records") as uow:
        return [tuple(r) for r in (await uow.execute(sa.text(
            "SELECT step, CAST(target_id AS text), outcome, detail FROM saga_steps "
            "WHERE decision_id = CAST(:d AS uuid)"), {"d": decision_id})).all()]


async def status(db: Database, order_id: str) -> str:
    async with db.single_statement("read_order") as uow:
        return (await uow.execute(sa.text("SELECT status FROM orders WHERE id = :id"), {"id": order_id})).scalar()


async def test_a_step_moves_once_and_a_repeat_is_answered_from_its_record(shop):
    db, participant = shop
    target, decision = await order(db), str(uuid.uuid4())
    first = await participant.carry_out("ship", target, decision)
    again = await participant.carry_out("ship", target, decision)
    assert (first.outcome, first.repeated) == ("shipped", False)
    assert (again.outcome, again.repeated) == ("shipped", True)
    assert await records(db, decision) == [("ship", target, "shipped", {})]


async def test_a_refusal_is_judged_under_the_lock_recorded_and_repeated_even_after_the_target_changes(shop):
    db, participant = shop
    target, decision = await order(db, "cancelled"), str(uuid.uuid4())
    with pytest.raises(StepRefused) as refused:
        await participant.carry_out("ship", target, decision)
    assert (refused.value.code, refused.value.message) == ("order_not_open", "Order cannot be shipped from status cancelled")
    async with db.single_statement("reopen") as uow:
        await uow.execute(sa.text("UPDATE orders SET status = 'open' WHERE id = :id"), {"id": target})
    with pytest.raises(StepRefused) as again:
        await participant.carry_out("ship", target, decision)
    assert again.value.message == refused.value.message
    assert await status(db, target) == "open"
    assert await records(db, decision) == [("ship", target, "refused", {
        "code": "order_not_open", "message": "Order cannot be shipped from status cancelled"})]


async def test_a_decision_reused_on_another_target_is_refused_and_moves_nothing(shop):
    db, participant = shop
    first, second, decision = await order(db), await order(db), str(uuid.uuid4())
    await participant.carry_out("ship", first, decision)
    with pytest.raises(AlreadyExists) as reused:
        await participant.carry_out("ship", second, decision)
    assert reused.value.code == "decision_reused"
    assert await status(db, second) == "open"


async def test_twenty_concurrent_calls_of_one_step_end_with_one_outcome(shop):
    db, participant = shop
    target, decision = await order(db), str(uuid.uuid4())
    answers = await asyncio.gather(*(participant.carry_out("ship", target, decision) for _ in range(20)))
    assert {a.outcome for a in answers} == {"shipped"}
    assert sum(not a.repeated for a in answers) == 1
    assert await records(db, decision) == [("ship", target, "shipped", {})]


async def test_twenty_decisions_racing_for_one_target_one_moves_the_others_are_refused(shop):
    db, participant = shop
    target = await order(db)
    answers = await asyncio.gather(*(participant.carry_out("ship", target, str(uuid.uuid4())) for _ in range(20)),
                                   return_exceptions=True)
    assert sum(not isinstance(a, Exception) for a in answers) == 1
    assert {type(a) for a in answers if isinstance(a, Exception)} == {StepRefused}
