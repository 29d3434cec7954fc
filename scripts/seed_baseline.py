"""The baseline for the approve benchmarks: the seed's approve (one
PostgreSQL transaction in one process: lock the target, check the
preconditions, debit the wallet, hold the escrow with its ledger entries,
create the post job, approve the target, audit), run directly on asyncpg
against the same server, so the ratio shows what the three services, the
outbox and four gRPC hops cost over the monolith."""
import asyncio
import time
import uuid

import asyncpg

SCHEMA = """
CREATE TABLE IF NOT EXISTS seed_targets (id uuid PRIMARY KEY, campaign_status text NOT NULL, channel_status text NOT NULL,
    creatives int NOT NULL, status text NOT NULL, price bigint NOT NULL, advertiser uuid NOT NULL,
    scheduled_at timestamptz NOT NULL, moderated_by uuid, moderated_at timestamptz);
CREATE TABLE IF NOT EXISTS seed_wallets (user_id uuid PRIMARY KEY, balance bigint NOT NULL CHECK (balance >= 0));
CREATE TABLE IF NOT EXISTS seed_escrows (id uuid PRIMARY KEY, target_id uuid UNIQUE NOT NULL, amount bigint NOT NULL, status text NOT NULL);
CREATE TABLE IF NOT EXISTS seed_ledger (id bigserial PRIMARY KEY, tx uuid NOT NULL, account text NOT NULL, amount bigint NOT NULL);
CREATE TABLE IF NOT EXISTS seed_post_jobs (id uuid PRIMARY KEY, target_id uuid UNIQUE NOT NULL, execute_at timestamptz NOT NULL, status text NOT NULL);
CREATE TABLE IF NOT EXISTS seed_audit (id bigserial PRIMARY KEY, action text NOT NULL, entity uuid NOT NULL, at timestamptz NOT NULL DEFAULT now());
"""


async def prepare(pool: asyncpg.Pool, count: int, price: int = 100) -> list[str]:
    async with pool.acquire() as conn:
        await conn.execute(SCHEMA)
        advertiser = uuid.uuid4()
        await conn.execute("INSERT INTO seed_wallets VALUES ($1, $2)", advertiser, price * count)
        ids = [uuid.uuid4() for _ in range(count)]
        await conn.executemany(
            "INSERT INTO seed_targets VALUES ($1, 'active', 'approved', 1, 'submitted', $2, $3, now() + interval '1 day')",
            [(i, price, advertiser) for i in ids])
    return [str(i) for i in ids]


async def approve(pool: asyncpg.Pool, target_id: str, admin: uuid.UUID) -> None:
    async with pool.acquire() as conn, conn.transaction():
        t = await conn.fetchrow("SELECT * FROM seed_targets WHERE id = $1 FOR UPDATE", uuid.UUID(target_id))
        if (t["status"], t["campaign_status"], t["channel_status"]) != ("submitted", "active", "approved") or not t["creatives"]:
            raise RuntimeError("precondition failed")
        if await conn.fetchval("SELECT id FROM seed_post_jobs WHERE target_id = $1", t["id"]):
            return
        if await conn.execute("UPDATE seed_wallets SET balance = balance - $1 WHERE user_id = $2 AND balance >= $1",
                              t["price"], t["advertiser"]) != "UPDATE 1":
            raise RuntimeError("insufficient funds")
        tx = uuid.uuid4()
        await conn.execute("INSERT INTO seed_escrows VALUES ($1, $2, $3, 'held')", uuid.uuid4(), t["id"], t["price"])
        await conn.executemany("INSERT INTO seed_ledger (tx, account, amount) VALUES ($1, $2, $3)",
                               [(tx, "wallet", -t["price"]), (tx, "escrow", t["price"])])
        await conn.execute("INSERT INTO seed_post_jobs VALUES ($1, $2, $3, 'queued')", uuid.uuid4(), t["id"], t["scheduled_at"])
        await conn.execute("UPDATE seed_targets SET status = 'approved', moderated_by = $2, moderated_at = now() WHERE id = $1",
                           t["id"], admin)
        await conn.execute("INSERT INTO seed_audit (action, entity) VALUES ('moderation_approved', $1)", t["id"])


async def run(dsn: str, count: int, concurrency: int) -> tuple[list[float], float]:
    """Latencies (seconds) of `count` approves by `concurrency` moderators,
    and the wall time they took."""
    pool = await asyncpg.create_pool(dsn, min_size=concurrency, max_size=concurrency)
    try:
        ids = await prepare(pool, count)
        queue = list(reversed(ids))
        admin, latencies = uuid.uuid4(), []

        async def moderator():
            while queue:
                target = queue.pop()
                started = time.perf_counter()
                await approve(pool, target, admin)
                latencies.append(time.perf_counter() - started)
        started = time.perf_counter()
        await asyncio.gather(*(moderator() for _ in range(concurrency)))
        return latencies, time.perf_counter() - started
    finally:
        await pool.close()
