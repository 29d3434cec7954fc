"""`adtech outbox` and `adtech payments reconcile` against real services:
they act as the system with the internal credential and print tables."""
import asyncio
import importlib.util

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

import operations as cli
from common.db import database_url_for
from tests import harness

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("services.moderation.main") is None or importlib.util.find_spec("services.payments.main") is None,
    reason="services.moderation.main / services.payments.main not written yet")


@pytest.fixture(scope="module")
async def running(pg_server, data_dir):
    """Moderation and payments on free ports, each on a fresh database."""
    started, names = {}, {}
    for context in ("moderation", "payments"):
        names[context] = await harness.fresh_database(pg_server, context)
        settings = harness.settings_for(context, pg_server, data_dir, **{f"{context}_database": names[context]})
        started[context] = await harness.start(context, settings)
    yield started, names
    for service in started.values():
        await service.stop(0.5)


@pytest.fixture
def cli_env(monkeypatch, running, data_dir):
    started, _ = running
    monkeypatch.setenv("ADTECH_INTERNAL_TOKEN", harness.INTERNAL_TOKEN)
    monkeypatch.setenv("ADTECH_DATA_DIR", str(data_dir))
    for context, service in started.items():
        monkeypatch.setenv(f"{context.upper()}_ADDR", f"127.0.0.1:{service.port}")


async def adtech(capsys, *args: str) -> tuple[int, str]:
    """Runs the command in a thread (it runs its own event loop) while the
    services keep serving in this one."""
    with pytest.raises(SystemExit) as stopped:
        await asyncio.to_thread(cli.main, list(args))
    return stopped.value.code, capsys.readouterr().out


async def test_outbox_list_shows_dead_letters_and_retry_requeues_them(cli_env, running, pg_server, capsys):
    _, names = running
    engine = create_async_engine(database_url_for(pg_server, names["moderation"]))
    async with engine.begin() as conn:
        dead = await conn.scalar(sa.text("""
            INSERT INTO outbox_messages (topic, aggregate_id, payload, status, attempts, last_error)
            VALUES ('cli.test', 'agg-1', '{}', 'dead', 25, 'UNAVAILABLE') RETURNING id"""))
    try:
        code, out = await adtech(capsys, "outbox", "list", "--service", "moderation", "--status", "dead")
        assert code == 0
        assert any(line.split()[:4] == [str(dead), "cli.test", "agg-1", "dead"] for line in out.splitlines())

        code, out = await adtech(capsys, "outbox", "retry", "--service", "moderation", "--id", str(dead))
        assert (code, out.strip()) == (0, "moderation: requeued 1 dead-lettered message(s)")
    finally:
        async with engine.begin() as conn:
            await conn.execute(sa.text("DELETE FROM outbox_messages WHERE id = :id"), {"id": dead})
        await engine.dispose()


async def test_outbox_stats_reports_pending_and_dead(cli_env, capsys):
    code, out = await adtech(capsys, "outbox", "stats", "--service", "moderation")
    assert code == 0 and out.startswith("moderation: pending=")


async def test_reconcile_of_a_fresh_ledger_passes_with_a_table(cli_env, capsys):
    code, out = await adtech(capsys, "payments", "reconcile")
    assert code == 0, out
    assert out.splitlines()[0].split() == ["check", "ok", "violations", "detail"]
    assert len(out.splitlines()) > 1


async def test_a_service_that_is_down_is_one_line_naming_it(cli_env, monkeypatch, capsys):
    address = f"127.0.0.1:{harness.free_port()}"
    monkeypatch.setenv("PAYMENTS_ADDR", address)
    monkeypatch.setenv("GRPC_DEADLINE_MS", "500")
    code, _ = await adtech(capsys, "payments", "reconcile")
    assert code.startswith(f"error: payments at {address}: UNAVAILABLE") and "\n" not in code


async def test_retry_by_id_needs_the_service_because_ids_are_per_service(cli_env, capsys):
    code, _ = await adtech(capsys, "outbox", "retry", "--id", "7")
    assert code == "error: --id needs --service: message ids are per service"
