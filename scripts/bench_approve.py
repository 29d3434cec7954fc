"""Approve benchmark through the gateway (make bench-approve / make bench).

Starts the whole stack as `make run` does (separate processes, embedded
PostgreSQL in a temporary data directory, free ports, the default log
level; pg_stat_statements loaded) unless --base-url points at a running
one. Runs, in one go: the seed's single-transaction approve on the same
PostgreSQL server as the baseline (1, 10 and 50 concurrent), then 1, 10 and
50 moderators approving distinct targets back-to-back (each on its own
advertisers), then the seed's E.5 (50 parallel campaigns of 2 targets).
For each phase: p50/p95/p99 of settled approvals (200 with escrow and post
job), settled per second, errors, outbox lag, CPU ms per approve per
process (PostgreSQL and the supervisor included, read from /proc), and
PostgreSQL's planning and execution ms per approve per database (from
pg_stat_statements); then the ratios to the baseline. Figures also go to a
JSON file (bench-results/approve.json)."""
import argparse
import asyncio
import datetime as dt
import itertools
import json
import os
import pathlib
import statistics
import sys
import time
import uuid

import jwt

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "gen"), str(ROOT / "scripts")]

from benchstack import Stack, StatStatements  # noqa: E402
from leanhttp import Connection  # noqa: E402
import seed_baseline  # noqa: E402
from sandbox.testing import SandboxControl  # noqa: E402


def token(secret: str, role: str, sub: str | None = None) -> str:
    claims = {"sub": sub or str(uuid.uuid4()), "role": role, "exp": int(time.time()) + 3600}
    return jwt.encode(claims, secret, algorithm="HS256")


class Api:
    def __init__(self, host: str, port: int, secret: str, sandbox=None):
        self.host, self.port, self.secret = host, port, secret
        self.sandbox = sandbox  # the stack's Bot API sandbox (sandbox.testing.SandboxControl)
        self.admin = {"Authorization": f"Bearer {token(secret, 'admin')}"}

    def conn(self) -> Connection:
        return Connection(self.host, self.port)

    async def call(self, conn, method, path, body=None, headers=None, expect=(200, 201)):
        status, reply = await conn.request(method, path, body, headers)
        if status not in expect:
            raise RuntimeError(f"{method} {path} -> {status} {reply}")
        return reply


async def prepare(api: Api, campaigns: int, per_campaign: int, price: int = 100) -> list[list[str]]:
    """`campaigns` funded advertisers, each with one active campaign of
    `per_campaign` submitted targets on one approved channel."""
    conn = api.conn()
    publisher = {"Authorization": f"Bearer {token(api.secret, 'publisher')}"}
    handle = f"@bench_{uuid.uuid4().hex[:10]}"
    await own_channel(api, conn, publisher, handle)
    channel = await api.call(conn, "POST", "/api/channels", {"title": "Bench", "handle": handle, "pricePerPost": price,
                                                             "autoAccept": True}, publisher)
    await api.call(conn, "POST", f"/api/channels/{channel['id']}/approve", None, api.admin)
    # One post per channel slot (CHANNEL_POST_GAP_MINUTES, 60 by default):
    # each target its own, 61 minutes apart, within the 31-day horizon.
    first_slot, slots = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1), itertools.count()

    def scheduled() -> str:
        return (first_slot + dt.timedelta(minutes=61 * next(slots))).isoformat().replace("+00:00", "Z")
    await conn.close()

    async def advertiser() -> list[str]:
        c = api.conn()
        user = str(uuid.uuid4())
        me = {"Authorization": f"Bearer {token(api.secret, 'advertiser', user)}"}
        await api.call(c, "GET", "/api/wallet", None, me)
        await api.call(c, "POST", f"/api/wallets/{user}/deposits", {"amount": price * per_campaign},
                       {**api.admin, "Idempotency-Key": uuid.uuid4().hex})
        campaign = await api.call(c, "POST", "/api/campaigns", {"name": "Bench", "creatives": [{"text": "Hello"}]}, me)
        await api.call(c, "POST", f"/api/campaigns/{campaign['id']}/activate", None, me)
        ids = []
        for _ in range(per_campaign):
            target = await api.call(c, "POST", f"/api/campaigns/{campaign['id']}/targets",
                                    {"channelId": channel["id"], "scheduledAt": scheduled()}, me)
            await api.call(c, "POST", f"/api/campaigns/{campaign['id']}/targets/{target['id']}/submit", None, me)
            ids.append(target["id"])
        await c.close()
        return ids

    batches = []
    for start in range(0, campaigns, 16):
        batches += await asyncio.gather(*(advertiser() for _ in range(start, min(campaigns, start + 16))))
    return batches


async def own_channel(api: Api, conn, publisher: dict, handle: str, timeout: float = 15.0) -> None:
    """The publisher's Telegram account, linked through the stack's bot and
    made the chat's creator in its sandbox: what a listing requires."""
    if api.sandbox is None:
        raise SystemExit("listing a channel needs the stack's Bot API sandbox (run without --base-url)")
    account = await api.sandbox.create_user()
    link = await api.call(conn, "POST", "/api/me/telegram/link", None, publisher)
    await api.sandbox.send_message(account["id"], f"/start {link['code']}")
    deadline = time.monotonic() + timeout
    while not (await api.call(conn, "GET", "/api/me/telegram", None, publisher))["linked"]:
        if time.monotonic() > deadline:
            raise SystemExit("the stack's bot did not link the publisher's Telegram account")
        await asyncio.sleep(0.05)
    await api.sandbox.set_member(handle, account["id"], "creator")


def summary(latencies: list[float], wall: float, errors: int) -> dict:
    ordered = sorted(latencies)

    def pct(p):
        return round(ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000, 2) if ordered else None
    return {"settled": len(ordered), "errors": errors, "p50_ms": pct(50), "p95_ms": pct(95), "p99_ms": pct(99),
            "mean_ms": round(statistics.fmean(ordered) * 1000, 2) if ordered else None,
            "per_second": round(len(ordered) / wall, 1) if wall else None}


async def approve_phase(api: Api, work: list[list[str]], lag_probe, meter=None, stats=None) -> dict:
    """One moderator per list in `work`, each approving its targets back to back."""
    latencies, errors = [], []

    async def moderator(targets: list[str]):
        conn = api.conn()
        for target in targets:
            started = time.perf_counter()
            status, reply = await conn.request("POST", f"/api/moderation/targets/{target}/approve", None, api.admin)
            elapsed = time.perf_counter() - started
            if status == 200 and reply.get("status") == "approved" and reply.get("escrowId") and reply.get("postJobId"):
                latencies.append(elapsed)
            else:
                errors.append((status, reply))
        await conn.close()

    if stats:
        await stats.reset()
    cpu_before = meter.read() if meter else None
    probe = asyncio.create_task(lag_probe.watch())
    started = time.perf_counter()
    await asyncio.gather(*(moderator(targets) for targets in work))
    wall = time.perf_counter() - started
    probe.cancel()
    result = summary(latencies, wall, len(errors))
    result.update(moderators=len(work), outbox=lag_probe.result())
    if meter:
        result["cpu_ms_per_approve"] = meter.per_item_ms(cpu_before, meter.read(), len(latencies) + len(errors))
    if stats:
        result["postgres_ms_per_approve"] = await stats.per_database(len(latencies) + len(errors))
    if errors:
        result["first_error"] = str(errors[0])[:300]
    return result


def deal(campaigns: list[list[str]], moderators: int) -> list[list[str]]:
    """Whole campaigns to moderators in turn, so that each moderator works
    on advertisers of its own (as moderators sharing a queue by advertiser
    would), and no two approve on one wallet at once."""
    work: list[list[str]] = [[] for _ in range(moderators)]
    for i, campaign in enumerate(campaigns):
        work[i % moderators] += campaign
    return work


class LagProbe:
    """Samples moderation's outbox (oldest pending age, pending count)."""

    def __init__(self, address: str | None, internal_token: str | None):
        self.address, self.token = address, internal_token
        self.max_age = self.max_pending = 0.0

    async def watch(self):
        self.max_age = self.max_pending = 0.0
        if not self.address:
            return
        from adtech.ops.v1 import ops_pb2, ops_pb2_grpc
        from common.auth import SYSTEM, acting_as
        from common.clients import open_channel
        async with open_channel(self.address, self.token, 2000) as channel:
            stub = ops_pb2_grpc.OpsServiceStub(channel)
            while True:
                with acting_as(SYSTEM):
                    stats = await stub.GetOutboxStats(ops_pb2.GetOutboxStatsRequest())
                self.max_age = max(self.max_age, stats.oldest_pending_age_seconds)
                self.max_pending = max(self.max_pending, stats.pending)
                await asyncio.sleep(0.1)

    def result(self) -> dict:
        return {"max_pending": int(self.max_pending), "max_oldest_pending_ms": round(self.max_age * 1000, 1)}


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--moderators", default="1,10,50", help="comma-separated moderator counts")
    parser.add_argument("--approvals", type=int, default=300, help="approvals per moderator count (at least 5 per moderator)")
    parser.add_argument("--no-e5", action="store_true", help="skip the seed's E.5 phase")
    parser.add_argument("--base-url", help="a running gateway, e.g. http://127.0.0.1:4002 (needs --jwt-secret)")
    parser.add_argument("--jwt-secret", default=os.environ.get("ADTECH_JWT_SECRET"))
    parser.add_argument("--json", default=str(ROOT / "bench-results" / "approve.json"))
    args = parser.parse_args()
    counts = [int(n) for n in args.moderators.split(",")]

    stack = meter = stats = pg_dsn = None
    if args.base_url:
        host, port = args.base_url.split("//")[1].split("/")[0].split(":")
        api, probe = Api(host, int(port), args.jwt_secret), LagProbe(None, None)
    else:
        stack = Stack()
        stack.start()
    try:
        if stack:
            await stack.ready()
            api = Api("127.0.0.1", stack.ports["gateway"], stack.secret("ADTECH_JWT_SECRET"), SandboxControl(
                f"http://127.0.0.1:{stack.ports['telegram_sandbox']}", stack.secret("TELEGRAM_SANDBOX_CONTROL_TOKEN")))
            probe = LagProbe(f"127.0.0.1:{stack.ports['moderation']}", stack.secret("ADTECH_INTERNAL_TOKEN"))
            pg_dsn = stack.server_dsn()
            meter, stats = stack.cpu_meter(), StatStatements(pg_dsn)
        results = {"when": dt.datetime.now(dt.timezone.utc).isoformat(), "machine": f"{os.cpu_count()} cores",
                   "baseline": {}, "phases": []}
        if pg_dsn:
            for moderators in counts:
                before = meter.read()
                latencies, wall = await seed_baseline.run(pg_dsn, max(args.approvals, moderators * 5), moderators)
                results["baseline"][str(moderators)] = summary(latencies, wall, 0)
                # The baseline runs in this process; only PostgreSQL's share is read here.
                results["baseline"][str(moderators)]["postgres_cpu_ms_per_approve"] = round(
                    (meter.read()["postgres"] - before["postgres"]) * 1000 / max(len(latencies), 1), 2)
                print(format_baseline(moderators, results["baseline"][str(moderators)]), flush=True)
        for moderators in counts:
            total = max(args.approvals, moderators * 5) + moderators
            per_campaign = max(1, min(25, -(-total // moderators)))
            campaigns = max(moderators, -(-total // per_campaign))
            targets = await prepare(api, campaigns, per_campaign)
            work = deal(targets, moderators)
            await approve_phase(api, [w[:1] for w in work], probe)  # warm-up: connections, caches
            phase = await approve_phase(api, [w[1:] for w in work], probe, meter, stats)
            phase["name"] = f"{moderators} moderators"
            compare(phase, results["baseline"].get(str(moderators)))
            results["phases"].append(phase)
            print(format_phase(phase), flush=True)
        if not args.no_e5:
            targets = await prepare(api, 50, 2)
            phase = await approve_phase(api, targets, probe, meter, stats)
            phase["name"] = "E.5: 50 parallel campaigns x 2 targets"
            compare(phase, results["baseline"].get("50"))
            results["phases"].append(phase)
            print(format_phase(phase), flush=True)
        path = pathlib.Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=2))
        print(f"figures written to {path}")
        return 0 if all(p["errors"] == 0 for p in results["phases"]) else 1
    finally:
        if stack:
            stack.stop()


def compare(phase: dict, baseline: dict | None) -> None:
    if not baseline:
        return
    phase["ratio_p50"] = round(phase["p50_ms"] / baseline["p50_ms"], 2) if phase["p50_ms"] else None
    phase["ratio_per_second"] = round(phase["per_second"] / baseline["per_second"], 3) if phase["per_second"] else None


def format_baseline(concurrency: int, b: dict) -> str:
    return (f"seed baseline (1 tx, 1 process), {concurrency:>2} concurrent: p50={b['p50_ms']}ms p95={b['p95_ms']}ms "
            f"{b['per_second']}/s  PostgreSQL CPU {b.get('postgres_cpu_ms_per_approve')} ms per approve")


def format_phase(p: dict) -> str:
    line = (f"{p['name']}: settled={p['settled']}  errors={p['errors']}  "
            f"p50={p['p50_ms']}ms p95={p['p95_ms']}ms p99={p['p99_ms']}ms  {p['per_second']}/s  "
            f"outbox max pending={p['outbox']['max_pending']} oldest={p['outbox']['max_oldest_pending_ms']}ms")
    if "ratio_p50" in p:
        line += f"\n    vs seed baseline: p50 x{p['ratio_p50']}  throughput x{p['ratio_per_second']}"
    if "cpu_ms_per_approve" in p:
        line += "\n    CPU ms per approve: " + "  ".join(f"{k} {v}" for k, v in p["cpu_ms_per_approve"].items())
    if "postgres_ms_per_approve" in p:
        pg = p["postgres_ms_per_approve"]
        line += "\n    PostgreSQL ms per approve (planning / execution, plans / calls): " + "  ".join(
            f"{db} {v['plan_ms']} / {v['exec_ms']} ({v['plans']}/{v['calls']})" for db, v in pg.items() if db != "top")
        plan = sum(v["plan_ms"] for db, v in pg.items() if db != "top")
        line += f"  planning total {round(plan, 3)}"
    if "first_error" in p:
        line += f"\n    first error: {p['first_error']}"
    return line


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
