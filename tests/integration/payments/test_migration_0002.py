"""Migration 0002 on a ledger written by the old code: held, released and
refunded escrows whose money went through the one shared escrow account of
each currency. After the upgrade each held escrow's money sits in its own
account, moved there by balanced transactions appended to the history;
reconcile passes, and the migrated escrows release and refund as new ones.

The old moves are raw SQL in the old code's shape: lock and update each
account, append an entry stating its new balance and version."""
import asyncio
import uuid

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from adtech.payments.v1 import payments_pb2 as pb
from adtech.payments.v1 import payments_pb2_grpc
from common import migrations
from common.clients import open_channel
from common.db import database_url_for, ensure_database, sqlstate
from tests import harness
from tests.integration.payments.conftest import PaymentsClient, new_id

FEE_BPS = 1000
UNCOVERED = "PL006"


class OldLedger:
    """The 0001 schema's moves, as the code before 0002 made them."""

    def __init__(self, conn):
        self.conn = conn

    async def account(self, kind: str, currency: str, user: str | None = None) -> int:
        await self.conn.execute(sa.text("""
            INSERT INTO accounts (kind, user_id, currency) VALUES (:kind, CAST(:user AS uuid), :currency)
            ON CONFLICT ON CONSTRAINT accounts_one_per_owner DO NOTHING"""),
            {"kind": kind, "user": user, "currency": currency})
        return await self.conn.scalar(sa.text("""
            SELECT id FROM accounts WHERE kind = :kind AND user_id IS NOT DISTINCT FROM CAST(:user AS uuid)
               AND currency = :currency"""), {"kind": kind, "user": user, "currency": currency})

    async def move(self, kind: str, reference: str, legs: list[tuple[int, str, int]]) -> str:
        tx = new_id()
        await self.conn.execute(sa.text(
            "INSERT INTO ledger_transactions (id, kind, reference) VALUES (CAST(:tx AS uuid), :kind, :ref)"),
            {"tx": tx, "kind": kind, "ref": reference})
        for account, entry_kind, amount in sorted(legs):
            state = (await self.conn.execute(sa.text("""
                UPDATE accounts SET balance = balance + :amount, version = version + 1 WHERE id = :id
                RETURNING balance, version"""), {"amount": amount, "id": account})).one()
            await self.conn.execute(sa.text("""
                INSERT INTO ledger_entries (transaction_id, account_id, kind, amount, balance_after, account_version)
                VALUES (CAST(:tx AS uuid), :id, :kind, :amount, :balance, :version)"""),
                {"tx": tx, "id": account, "kind": entry_kind, "amount": amount, "balance": state.balance,
                 "version": state.version})
        return tx

    async def deposit(self, user: str, amount: int, currency: str) -> None:
        wallet, external = await self.account("wallet", currency, user), await self.account("external", currency)
        await self.move("deposit", "", [(wallet, "deposit", amount), (external, "deposit", -amount)])

    async def hold(self, target: str, advertiser: str, publisher: str, amount: int, currency: str) -> None:
        wallet, pool = await self.account("wallet", currency, advertiser), await self.account("escrow", currency)
        tx = await self.move("escrow_hold", target, [(wallet, "escrow_hold", -amount), (pool, "escrow_hold", amount)])
        decision = new_id()
        await self.conn.execute(sa.text("""
            INSERT INTO escrow_decisions (decision_id, target_id, outcome)
            VALUES (CAST(:d AS uuid), CAST(:t AS uuid), 'held')"""), {"d": decision, "t": target})
        await self.conn.execute(sa.text("""
            INSERT INTO escrows (id, target_id, decision_id, advertiser_id, publisher_id, amount, currency,
                                 hold_transaction_id)
            VALUES (gen_random_uuid(), CAST(:t AS uuid), CAST(:d AS uuid), CAST(:a AS uuid), CAST(:p AS uuid),
                    :amount, :currency, CAST(:tx AS uuid))"""),
            {"t": target, "d": decision, "a": advertiser, "p": publisher, "amount": amount, "currency": currency,
             "tx": tx})

    async def release(self, target: str, publisher: str, amount: int, currency: str) -> None:
        fee = amount * FEE_BPS // 10_000
        pool, wallet = await self.account("escrow", currency), await self.account("wallet", currency, publisher)
        platform = await self.account("platform_fee", currency)
        tx = await self.move("escrow_release", target, [
            (pool, "escrow_release", -amount), (wallet, "escrow_release", amount - fee), (platform, "fee", fee)])
        await self._close(target, "released", fee, tx)

    async def refund(self, target: str, advertiser: str, amount: int, currency: str) -> None:
        pool, wallet = await self.account("escrow", currency), await self.account("wallet", currency, advertiser)
        tx = await self.move("escrow_refund", target, [(pool, "escrow_refund", -amount),
                                                       (wallet, "escrow_refund", amount)])
        await self._close(target, "refunded", None, tx)

    async def _close(self, target: str, status: str, fee: int | None, tx: str) -> None:
        await self.conn.execute(sa.text("""
            UPDATE escrows SET status = :status, fee = :fee, close_transaction_id = CAST(:tx AS uuid)
             WHERE target_id = CAST(:t AS uuid) AND status = 'held'"""),
            {"status": status, "fee": fee, "tx": tx, "t": target})


async def _database_at(pg_server: str, revision: str) -> tuple[str, str]:
    name = f"adtech_payments_m{uuid.uuid4().hex[:10]}"
    await ensure_database(pg_server, name)
    url = database_url_for(pg_server, name)
    await asyncio.to_thread(migrations.upgrade, "payments", url, revision)
    return name, url


async def _scalar(engine, sql: str, **params):
    async with engine.connect() as conn:
        return await conn.scalar(sa.text(sql), params)


@pytest.fixture(scope="module")
async def old_ledger(pg_server):
    """A database at 0001 with the old code's history in two currencies:
    per currency, three advertisers each with escrows held, released and
    refunded, and a publisher paid."""
    name, url = await _database_at(pg_server, "0001")
    engine = create_async_engine(url)
    world = {"name": name, "engine": engine, "held": {}, "closed": [], "advertisers": {}, "publishers": {}}
    async with engine.begin() as conn:
        old = OldLedger(conn)
        for currency in ("USD", "EUR"):
            publisher = new_id()
            world["publishers"][currency] = publisher
            for _ in range(3):
                advertiser = new_id()
                await old.deposit(advertiser, 10_000, currency)
                world["advertisers"].setdefault(currency, []).append(advertiser)
                for amount, close in ((1_000, None), (2_500, None), (999, "release"), (700, "refund")):
                    target = new_id()
                    await old.hold(target, advertiser, publisher, amount, currency)
                    if close == "release":
                        await old.release(target, publisher, amount, currency)
                    elif close == "refund":
                        await old.refund(target, advertiser, amount, currency)
                    if close:
                        world["closed"].append(target)
                    else:
                        world["held"][target] = (advertiser, publisher, amount, currency)
            refused_decision, refused_target = new_id(), new_id()
            await conn.execute(sa.text("""
                INSERT INTO escrow_decisions (decision_id, target_id, outcome, message)
                VALUES (CAST(:d AS uuid), CAST(:t AS uuid), 'insufficient_funds', 'Insufficient funds: balance 1, required 5')"""),
                {"d": refused_decision, "t": refused_target})
            world.setdefault("refused", {})[refused_decision] = refused_target
    try:
        yield world
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
async def migrated(old_ledger, pg_server, data_dir):
    """The old ledger's entries as they were, then the payments service
    started on it (it applies 0002 on start), and a client."""
    engine = old_ledger["engine"]
    async with engine.connect() as conn:
        old_entries = (await conn.execute(sa.text(
            "SELECT id, transaction_id, account_id, kind, amount, balance_after, account_version "
            "FROM ledger_entries ORDER BY id"))).all()
    settings = harness.settings_for("payments", pg_server, data_dir, payments_database=old_ledger["name"],
                                    platform_fee_bps=FEE_BPS)
    service = await harness.start("payments", settings)
    channel = open_channel(f"127.0.0.1:{service.port}", harness.INTERNAL_TOKEN, 10_000)
    try:
        yield {**old_ledger, "old_entries": old_entries,
               "client": PaymentsClient(payments_pb2_grpc.PaymentsServiceStub(channel), engine)}
    finally:
        await channel.close()
        await service.stop(0)


async def test_migrated_ledger_reconciles(migrated):
    assert await _scalar(migrated["engine"], "SELECT version_num FROM alembic_version") == "0004"
    await migrated["client"].assert_reconciled()


async def test_each_held_escrow_has_its_amount_in_its_own_account(migrated):
    async with migrated["engine"].connect() as conn:
        accounts = {str(r.escrow_target_id): (r.balance, r.version, r.currency) for r in (await conn.execute(sa.text(
            "SELECT escrow_target_id, balance, version, currency FROM accounts "
            "WHERE kind = 'escrow' AND escrow_target_id IS NOT NULL"))).all()}
        shared = dict((await conn.execute(sa.text(
            "SELECT currency, balance FROM accounts WHERE kind = 'escrow' AND escrow_target_id IS NULL"))).all())
    assert accounts == {target: (amount, 1, currency)
                        for target, (_, _, amount, currency) in migrated["held"].items()}
    assert shared == {"USD": 0, "EUR": 0}


async def test_the_move_is_appended_history_one_balanced_transfer_per_held_escrow(migrated):
    engine = migrated["engine"]
    async with engine.connect() as conn:
        entries = (await conn.execute(sa.text(
            "SELECT id, transaction_id, account_id, kind, amount, balance_after, account_version "
            "FROM ledger_entries WHERE id = ANY(:ids) ORDER BY id"),
            {"ids": [e.id for e in migrated["old_entries"]]})).all()
        transfers = (await conn.execute(sa.text("""
            SELECT t.reference, count(e.*) AS legs, sum(e.amount) AS total, max(e.amount) AS moved
              FROM ledger_transactions t JOIN ledger_entries e ON e.transaction_id = t.id
             WHERE t.kind = 'escrow_transfer' GROUP BY t.reference"""))).all()
    assert entries == migrated["old_entries"]
    assert {t.reference: (t.legs, t.total, t.moved) for t in transfers} == {
        target: (2, 0, amount) for target, (_, _, amount, _) in migrated["held"].items()}


async def test_wallets_read_as_before(migrated):
    client = migrated["client"]
    for currency, advertisers in migrated["advertisers"].items():
        for advertiser in advertisers:
            wallet = await client.wallet(advertiser, currency)
            assert (wallet.balance, wallet.held) == (10_000 - 1_000 - 2_500 - 999, 1_000 + 2_500)
        assert (await client.wallet(migrated["publishers"][currency], currency)).balance == 3 * 900


async def test_migrated_escrows_release_and_refund_from_their_own_accounts(migrated):
    client, engine = migrated["client"], migrated["engine"]
    by_currency: dict[str, list[str]] = {}
    for target, (_, _, _, currency) in migrated["held"].items():
        by_currency.setdefault(currency, []).append(target)
    for currency, targets in by_currency.items():
        publisher = migrated["publishers"][currency]
        paid = (await client.wallet(publisher, currency)).balance
        released = next(t for t in targets if migrated["held"][t][2] == 1_000)
        refunded = next(t for t in targets if migrated["held"][t][2] == 2_500)
        reply = await client.call("ReleaseEscrow", pb.ReleaseEscrowRequest(target_id=released))
        assert (reply.escrow.status, reply.fee) == ("released", 100)
        advertiser = migrated["held"][refunded][0]
        before = (await client.wallet(advertiser, currency)).balance
        assert (await client.call("RefundEscrow", pb.RefundEscrowRequest(target_id=refunded))).refunded
        assert (await client.wallet(publisher, currency)).balance == paid + 900
        assert (await client.wallet(advertiser, currency)).balance == before + 2_500
        for target in (released, refunded):
            assert await _scalar(engine, "SELECT balance FROM accounts WHERE escrow_target_id = CAST(:t AS uuid)",
                                 t=target) == 0
            migrated["held"].pop(target)
    await client.assert_reconciled()


async def test_new_holds_after_the_migration_never_touch_the_retired_account(migrated):
    client, engine = migrated["client"], migrated["engine"]
    versions = "SELECT sum(version) FROM accounts WHERE kind = 'escrow' AND escrow_target_id IS NULL"
    before = await _scalar(engine, versions)
    # New money moves in the platform's one currency only (USD); EUR's
    # escrows from before still release and refund (above).
    advertisers = migrated["advertisers"]["USD"]
    target = new_id()
    await client.hold(target, advertisers[0], 500)
    await client.call("RefundEscrow", pb.RefundEscrowRequest(target_id=target))
    await client.hold(new_id(), advertisers[1], 500)
    assert await _scalar(engine, versions) == before
    await client.assert_reconciled()


@pytest.mark.parametrize("corruption", [
    # The shared account holds more than the held escrows: money nobody owns.
    "UPDATE accounts SET balance = balance + 5 WHERE kind = 'escrow' AND currency = 'USD'",
    # A held escrow asks for more than the shared account holds.
    "UPDATE escrows SET amount = amount + 1000000 WHERE status = 'held' AND currency = 'USD'"])
async def test_migration_refuses_a_ledger_whose_escrow_account_does_not_match_held_escrows(pg_server, corruption):
    name, url = await _database_at(pg_server, "0001")
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            old = OldLedger(conn)
            advertiser = new_id()
            await old.deposit(advertiser, 1_000, "USD")
            await old.hold(new_id(), advertiser, new_id(), 300, "USD")
        async with engine.begin() as conn:
            await conn.execute(sa.text("SET LOCAL session_replication_role = replica"))
            await conn.execute(sa.text(corruption))
        with pytest.raises(Exception) as caught:
            await asyncio.to_thread(migrations.upgrade, "payments", url)
        assert sqlstate(caught.value) == UNCOVERED
        assert await _scalar(engine, "SELECT version_num FROM alembic_version") == "0001"
    finally:
        await engine.dispose()


async def test_hold_outcomes_become_step_records_0003(migrated):
    """0003: every outcome HoldEscrow recorded is a saga_steps record, a
    refusal with its reason and message, and the old table is gone."""
    async with migrated["engine"].connect() as conn:
        records = {str(r.target_id): (r.outcome, r.detail) for r in (await conn.execute(sa.text(
            "SELECT target_id, outcome, detail FROM saga_steps WHERE step = 'hold'"))).all()}
        old_table = await conn.scalar(sa.text("SELECT to_regclass('escrow_decisions')"))
    held = {t: ("held", {}) for t in migrated["held"]} | {t: ("held", {}) for t in migrated["closed"]}
    refused = {t: ("refused", {"code": "insufficient_funds", "message": "Insufficient funds: balance 1, required 5"})
               for t in migrated["refused"].values()}
    expected = held | refused  # (other tests of this module hold more targets since)
    assert {target: records.get(target) for target in expected} == expected
    assert old_table is None
