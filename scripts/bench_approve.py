"""Approve benchmark through the gateway (make bench-approve / make bench).

Starts the whole stack as `make run` does (separate processes, embedded
PostgreSQL in a temporary data directory, free ports) unless --base-url
points at a running one. Prepares funded advertisers with submitted targets,
then for each moderator count approves distinct targets back-to-back and
reports approve latency (p50/p95/p99 of settled approvals: 200 with escrow
and post job), settled approvals per second, errors and outbox lag; then
the seed's single-transaction approve on the same PostgreSQL server as the
baseline, and the ratios. Figures also go to a JSON file."""
import argparse
import asyncio
import datetime as dt
import json
import os
import pathlib
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

import jwt

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "gen"), str(ROOT / "scripts")]

from leanhttp import Connection  # noqa: E402
import seed_baseline  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Stack:
    """`adtech run` in a temporary data directory on free ports."""

    def __init__(self):
        self.data_dir = pathlib.Path(tempfile.mkdtemp(prefix="adtech-bench-"))
        self.ports = {name: free_port() for name in ("campaigns", "moderation", "payments", "gateway")}
        self.env = {**os.environ, "ADTECH_DATA_DIR": str(self.data_dir), "LOG_LEVEL": "WARNING",
                    "GATEWAY_PORT": str(self.ports["gateway"])}
        for name in ("campaigns", "moderation", "payments"):
            self.env[f"{name.upper()}_PORT"] = str(self.ports[name])
            self.env[f"{name.upper()}_ADDR"] = f"127.0.0.1:{self.ports[name]}"
        self.env.pop("DATABASE_URL", None)
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.log = open(self.data_dir / "stack.log", "w")
        self.process = subprocess.Popen([sys.executable, "-m", "common.cli", "run"], env=self.env, cwd=ROOT,
                                        stdout=self.log, stderr=subprocess.STDOUT)

    async def ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                status, _ = await Connection("127.0.0.1", self.ports["gateway"]).request("GET", "/api/health/ready")
                if status == 200:
                    return
            except OSError:
                pass
            if self.process.poll() is not None:
                break
            await asyncio.sleep(0.2)
        raise SystemExit(f"stack did not become ready; see {self.data_dir / 'stack.log'}")

    def secret(self, name: str) -> str:
        return (self.data_dir / "secrets" / name).read_text().strip()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()


def token(secret: str, role: str, sub: str | None = None) -> str:
    claims = {"sub": sub or str(uuid.uuid4()), "role": role, "exp": int(time.time()) + 3600}
    return jwt.encode(claims, secret, algorithm="HS256")


class Api:
    def __init__(self, host: str, port: int, secret: str):
        self.host, self.port, self.secret = host, port, secret
        self.admin = {"Authorization": f"Bearer {token(secret, 'admin')}"}

    def conn(self) -> Connection:
        return Connection(self.host, self.port)

    async def call(self, conn, method, path, body=None, headers=None, expect=(200, 201)):
        status, reply = await conn.request(method, path, body, headers)
        if status not in expect:
            raise RuntimeError(f"{method} {path} -> {status} {reply}")
        return reply


async def prepare(api: Api, count: int, price: int = 100, per_campaign: int = 25) -> list[str]:
    """`count` submitted targets on one approved channel, advertisers funded."""
    conn = api.conn()
    publisher = {"Authorization": f"Bearer {token(api.secret, 'publisher')}"}
    channel = await api.call(conn, "POST", "/api/channels",
                             {"title": "Bench", "handle": f"@bench_{uuid.uuid4().hex[:10]}", "pricePerPost": price}, publisher)
    await api.call(conn, "POST", f"/api/channels/{channel['id']}/approve", None, api.admin)
    scheduled = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=2)).isoformat().replace("+00:00", "Z")

    async def advertiser(n: int) -> list[str]:
        c = api.conn()
        user = str(uuid.uuid4())
        me = {"Authorization": f"Bearer {token(api.secret, 'advertiser', user)}"}
        await api.call(c, "POST", f"/api/wallets/{user}/deposits", {"amount": price * n},
                       {**api.admin, "Idempotency-Key": uuid.uuid4().hex})
        campaign = await api.call(c, "POST", "/api/campaigns", {"name": "Bench", "creatives": [{"text": "Hello"}]}, me)
        await api.call(c, "POST", f"/api/campaigns/{campaign['id']}/activate", None, me)
        ids = []
        for _ in range(n):
            target = await api.call(c, "POST", f"/api/campaigns/{campaign['id']}/targets",
                                    {"channelId": channel["id"], "scheduledAt": scheduled}, me)
            await api.call(c, "POST", f"/api/campaigns/{campaign['id']}/targets/{target['id']}/submit", None, me)
            ids.append(target["id"])
        await c.close()
        return ids

    sizes = [per_campaign] * (count // per_campaign) + ([count % per_campaign] if count % per_campaign else [])
    batches = []
    for start in range(0, len(sizes), 16):
        batches += await asyncio.gather(*(advertiser(n) for n in sizes[start:start + 16]))
    await conn.close()
    return [t for batch in batches for t in batch]


def summary(latencies: list[float], wall: float, errors: int) -> dict:
    ordered = sorted(latencies)

    def pct(p):
        return round(ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000, 2) if ordered else None
    return {"settled": len(ordered), "errors": errors, "p50_ms": pct(50), "p95_ms": pct(95), "p99_ms": pct(99),
            "mean_ms": round(statistics.fmean(ordered) * 1000, 2) if ordered else None,
            "per_second": round(len(ordered) / wall, 1) if wall else None}


async def approve_phase(api: Api, targets: list[str], moderators: int, lag_probe) -> dict:
    queue = list(reversed(targets))
    latencies, errors = [], []

    async def moderator():
        conn = api.conn()
        while queue:
            target = queue.pop()
            started = time.perf_counter()
            status, reply = await conn.request("POST", f"/api/moderation/targets/{target}/approve", None, api.admin)
            elapsed = time.perf_counter() - started
            if status == 200 and reply.get("status") == "approved" and reply.get("escrowId") and reply.get("postJobId"):
                latencies.append(elapsed)
            else:
                errors.append((status, reply))
        await conn.close()

    probe = asyncio.create_task(lag_probe.watch())
    started = time.perf_counter()
    await asyncio.gather(*(moderator() for _ in range(moderators)))
    wall = time.perf_counter() - started
    probe.cancel()
    result = summary(latencies, wall, len(errors))
    result.update(moderators=moderators, outbox=lag_probe.result())
    if errors:
        result["first_error"] = str(errors[0])[:300]
    return result


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
    parser.add_argument("--approvals", type=int, default=200, help="approvals per moderator count (at least 5 per moderator)")
    parser.add_argument("--base-url", help="a running gateway, e.g. http://127.0.0.1:4002 (needs --jwt-secret)")
    parser.add_argument("--jwt-secret", default=os.environ.get("ADTECH_JWT_SECRET"))
    parser.add_argument("--json", default=str(ROOT / "bench-results" / "approve.json"))
    args = parser.parse_args()
    counts = [int(n) for n in args.moderators.split(",")]

    stack = None
    if args.base_url:
        host, port = args.base_url.split("//")[1].split("/")[0].split(":")
        api, probe, pg_dsn = Api(host, int(port), args.jwt_secret), LagProbe(None, None), None
    else:
        stack = Stack()
        stack.start()
    try:
        if stack:
            await stack.ready()
            api = Api("127.0.0.1", stack.ports["gateway"], stack.secret("ADTECH_JWT_SECRET"))
            probe = LagProbe(f"127.0.0.1:{stack.ports['moderation']}", stack.secret("ADTECH_INTERNAL_TOKEN"))
            from common.db import start_embedded_server
            pg_dsn = start_embedded_server(stack.data_dir)
        results = {"when": dt.datetime.now(dt.timezone.utc).isoformat(), "machine": f"{os.cpu_count()} cores", "phases": []}
        for moderators in counts:
            total = max(args.approvals, moderators * 5)
            targets = await prepare(api, total)
            await approve_phase(api, targets[: moderators], moderators, probe)  # warm-up: connections, caches
            phase = await approve_phase(api, targets[moderators:], moderators, probe)
            if pg_dsn:
                base_latencies, base_wall = await seed_baseline.run(pg_dsn, total - moderators, moderators)
                phase["baseline"] = summary(base_latencies, base_wall, 0)
                phase["ratio_p50"] = round(phase["p50_ms"] / phase["baseline"]["p50_ms"], 2) if phase["p50_ms"] else None
                phase["ratio_per_second"] = round(phase["per_second"] / phase["baseline"]["per_second"], 3) if phase["per_second"] else None
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


def format_phase(p: dict) -> str:
    line = (f"moderators={p['moderators']:>3}  settled={p['settled']:>5}  errors={p['errors']}  "
            f"p50={p['p50_ms']}ms p95={p['p95_ms']}ms p99={p['p99_ms']}ms  {p['per_second']}/s  "
            f"outbox max pending={p['outbox']['max_pending']} oldest={p['outbox']['max_oldest_pending_ms']}ms")
    if "baseline" in p:
        b = p["baseline"]
        line += (f"\n    seed baseline (1 tx, 1 process): p50={b['p50_ms']}ms p95={b['p95_ms']}ms {b['per_second']}/s"
                 f"  ratio p50 x{p['ratio_p50']}  throughput x{p['ratio_per_second']}")
    return line


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
