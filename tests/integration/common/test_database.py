"""The shared database layer against real PostgreSQL: sessions live as
long as the process (each statement prepared and planned once per session),
a unit of work commits or leaves nothing, and a session whose state is
unknown never reaches another caller."""
import asyncio
import uuid

import pytest
import sqlalchemy as sa

from common.db import Database, DatabaseError, PoolExhausted, database_url_for, ensure_database, is_unique_violation
from common.errors import PreconditionFailed

_BACKEND = sa.text("SELECT pg_backend_pid() AS pid")
_COUNT = sa.text("SELECT count(*) FROM things")
_INSERT = sa.text("INSERT INTO things (id, note) VALUES (:id, :note) RETURNING id, note")
_PREPARED_PLANS = sa.text("""
    SELECT coalesce(sum(generic_plans + custom_plans), 0) AS plans, coalesce(sum(generic_plans), 0) AS generic
      FROM pg_prepared_statements WHERE statement LIKE 'SELECT note FROM things WHERE id = $1%'""")
_NOTE = sa.text("SELECT note FROM things WHERE id = :id")


@pytest.fixture
async def db(pg_server):
    name = f"db_t{uuid.uuid4().hex[:10]}"
    await ensure_database(pg_server, name)
    database = Database(database_url_for(pg_server, name), pool_size=2, acquire_timeout_s=0.3)
    async with database.unit_of_work("create_things") as uow:
        await uow.execute(sa.text("CREATE TABLE things (id int PRIMARY KEY, note jsonb NOT NULL)"))
        await uow.commit()
    yield database
    await database.dispose()


async def backend(db: Database) -> int:
    async with db.single_statement("read_backend") as uow:
        return (await uow.execute(_BACKEND)).one().pid


async def count(db: Database) -> int:
    async with db.single_statement("count_things") as uow:
        return (await uow.execute(_COUNT)).scalar()


async def test_sessions_are_reused_and_a_statement_is_planned_once_per_session_with_a_generic_plan(db):
    async with db.unit_of_work("add_thing") as uow:
        await uow.execute(_INSERT, {"id": 1, "note": '{"a": 1}'})
        await uow.commit()
    first = await backend(db)
    for _ in range(20):
        async with db.single_statement("read_note") as uow:
            assert (await uow.execute(_NOTE, {"id": 1})).one().note == {"a": 1}
    async with db.single_statement("read_plans") as uow:
        plans = (await uow.execute(_PREPARED_PLANS)).one()
    assert await backend(db) == first
    assert (plans.plans, plans.generic) == (20, 20)


async def test_rows_read_by_attribute_position_and_mapping_and_count_what_changed(db):
    async with db.single_statement("add_things") as uow:
        row = (await uow.execute(_INSERT, {"id": 7, "note": "[1, 2]"})).one()
        changed = await uow.execute(sa.text("UPDATE things SET note = '{}' WHERE id IN (7, 8)"))
    assert (row.id, row[1], row._mapping) == (7, [1, 2], {"id": 7, "note": [1, 2]})
    assert changed.rowcount == 1


async def test_leaving_a_unit_of_work_without_commit_leaves_nothing_and_the_session_serves_the_next_call(db):
    session = await backend(db)
    with pytest.raises(PreconditionFailed):
        async with db.unit_of_work("refused_after_a_write") as uow:
            await uow.execute(_INSERT, {"id": 2, "note": "{}"})
            raise PreconditionFailed("refused")
    assert await count(db) == 0
    assert await backend(db) == session


async def test_a_refused_statement_rolls_back_the_unit_and_is_matched_by_sqlstate(db):
    async with db.single_statement("add_thing") as uow:
        await uow.execute(_INSERT, {"id": 3, "note": "{}"})
    with pytest.raises(DatabaseError) as refused:
        async with db.unit_of_work("add_twice") as uow:
            await uow.execute(_INSERT, {"id": 4, "note": "{}"})
            await uow.execute(_INSERT, {"id": 3, "note": "{}"})
    assert is_unique_violation(refused.value, "things_pkey")
    assert await count(db) == 1


async def test_a_unit_cancelled_mid_statement_closes_its_session_and_the_next_call_gets_a_fresh_one(db):
    session = await backend(db)

    async def slow():
        async with db.unit_of_work("slow") as uow:
            await uow.execute(_INSERT, {"id": 5, "note": "{}"})
            await uow.execute(sa.text("SELECT pg_sleep(5)"))
            await uow.commit()

    task = asyncio.create_task(slow())
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await backend(db) != session
    assert await count(db) == 0


async def test_a_call_waits_for_a_free_session_and_gives_up_with_a_transient_error(db):
    from common.db import is_transient

    async def hold(seconds: float):
        async with db.single_statement("hold_a_session") as uow:
            await uow.execute(sa.text("SELECT pg_sleep(:s)"), {"s": seconds})

    holders = [asyncio.create_task(hold(1.0)) for _ in range(2)]
    await asyncio.sleep(0.1)
    with pytest.raises(PoolExhausted) as exhausted:
        await count(db)
    assert is_transient(exhausted.value)
    await asyncio.gather(*holders)
    assert await count(db) == 0


async def test_only_statements_marked_not_durable_commit_without_waiting_for_the_wal_flush(db):
    show = sa.text("SELECT current_setting('synchronous_commit') AS mode")
    async with db.single_statement("a_saga_step", durable=False) as uow:
        relaxed = (await uow.execute(show)).one().mode
    async with db.single_statement("a_business_fact") as uow:
        durable = (await uow.execute(show)).one().mode
    async with db.unit_of_work("a_business_act") as uow:
        in_unit = (await uow.execute(show)).one().mode
    assert (relaxed, durable, in_unit) == ("off", "on", "on")


async def test_a_unit_whose_statement_failed_cannot_commit_what_postgresql_already_rolled_back(db):
    with pytest.raises(RuntimeError):
        async with db.unit_of_work("swallowing_a_failure") as uow:
            await uow.execute(_INSERT, {"id": 9, "note": "{}"})
            with pytest.raises(DatabaseError):
                await uow.execute(_INSERT, {"id": 9, "note": "{}"})
            await uow.commit()
    assert await count(db) == 0


async def test_a_value_a_parameter_cannot_take_is_the_callers_error_and_keeps_the_session(db):
    from common.db import ValueOutOfRange, is_transient
    from common.errors import InvalidInput
    session = await backend(db)
    with pytest.raises(ValueOutOfRange) as refused:
        async with db.single_statement("bad_value") as uow:
            await uow.execute(_NOTE, {"id": "not a number"})
    assert not is_transient(refused.value)  # a caller repeating it would get the same answer
    assert isinstance(refused.value, InvalidInput)  # answered INVALID_ARGUMENT, never INTERNAL
    assert await backend(db) == session


async def test_a_statement_prepared_before_a_schema_change_is_prepared_again(db):
    select_all = sa.text("SELECT * FROM things")
    async with db.single_statement("add_thing") as uow:
        await uow.execute(_INSERT, {"id": 10, "note": "{}"})
        before = (await uow.execute(select_all)).one()
        await uow.execute(sa.text("ALTER TABLE things ADD COLUMN extra int NOT NULL DEFAULT 7"))
        after = (await uow.execute(select_all)).one()
    assert (len(before), after.extra) == (2, 7)
