"""Migration 0008 on listings made before channel ownership existed
(docs/design.md, "Listings made before ownership existed"): nothing old is
trusted. Of duplicates of a chat, or of a handle in any case, the oldest
live listing stays and the others are rejected; every live listing left is
suspended until its owner resubmits; and from then on the database itself
refuses a second live listing of a chat or a handle."""
import asyncio
import uuid

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from common.db import database_url_for, ensure_database
from common.migrations import upgrade


async def at_revision(pg_server: str, revision: str):
    name = f"adtech_campaigns_m{uuid.uuid4().hex[:10]}"
    await ensure_database(pg_server, name)
    url = database_url_for(pg_server, name)
    await asyncio.to_thread(upgrade, "campaigns", url, revision)
    return url, create_async_engine(url)


async def listing(conn, handle: str, status: str, *, chat_id=None, minutes_ago: int = 0) -> str:
    channel_id = str(uuid.uuid4())
    await conn.execute(sa.text("""
        INSERT INTO channels (id, owner_id, title, handle, price_per_post, currency, status, chat_id, created_at)
        VALUES (:id, :owner, 'Old', :handle, 100, 'USD', :status, :chat, now() - make_interval(mins => :ago))"""),
        {"id": channel_id, "owner": str(uuid.uuid4()), "handle": handle, "status": status, "chat": chat_id,
         "ago": minutes_ago})
    return channel_id


async def test_old_listings_are_suspended_and_duplicates_of_a_chat_or_handle_rejected(pg_server):
    url, engine = await at_revision(pg_server, "0007")
    try:
        async with engine.begin() as conn:
            oldest = await listing(conn, "@catsdaily", "approved", chat_id=-1001, minutes_ago=30)
            same_chat = await listing(conn, "@cats_renamed", "approved", chat_id=-1001, minutes_ago=20)
            same_handle = await listing(conn, "@CatsDaily", "pending", minutes_ago=10)
            pending = await listing(conn, "@dogsdaily", "pending")
            rejected = await listing(conn, "@birdsdaily", "rejected")
        await asyncio.to_thread(upgrade, "campaigns", url, "head")
        async with engine.connect() as conn:
            rows = {str(r.id): r for r in (await conn.execute(sa.text(
                "SELECT id, status, verified_at, rejection_reason FROM channels"))).all()}
        assert rows[oldest].status == "suspended" and rows[oldest].verified_at is None
        assert "resubmit" in rows[oldest].rejection_reason
        assert rows[same_chat].status == rows[same_handle].status == "rejected"
        assert "duplicate" in rows[same_chat].rejection_reason
        assert rows[pending].status == "suspended"
        assert rows[rejected].status == "rejected" and rows[rejected].rejection_reason is None
    finally:
        await engine.dispose()


async def test_the_database_refuses_a_second_live_listing_of_a_chat_or_a_handle_in_any_case(pg_server):
    url, engine = await at_revision(pg_server, "head")
    try:
        async with engine.begin() as conn:
            await conn.execute(sa.text("""
                INSERT INTO channels (id, owner_id, title, handle, price_per_post, currency, status, chat_id, verified_at)
                VALUES (gen_random_uuid(), gen_random_uuid(), 'A', '@catsdaily', 100, 'USD', 'pending', -1002, now())"""))
        for handle, chat in (("@other", -1002), ("@CATSDAILY", -1003)):
            with pytest.raises(sa.exc.IntegrityError):
                async with engine.begin() as conn:
                    await conn.execute(sa.text("""
                        INSERT INTO channels (id, owner_id, title, handle, price_per_post, currency, status, chat_id,
                                              verified_at)
                        VALUES (gen_random_uuid(), gen_random_uuid(), 'B', :handle, 100, 'USD', 'pending', :chat,
                                now())"""), {"handle": handle, "chat": chat})
        with pytest.raises(sa.exc.IntegrityError):  # a live listing that was never verified
            async with engine.begin() as conn:
                await conn.execute(sa.text("""
                    INSERT INTO channels (id, owner_id, title, handle, price_per_post, currency, status, chat_id)
                    VALUES (gen_random_uuid(), gen_random_uuid(), 'C', '@fresh', 100, 'USD', 'approved', -1004)"""))
    finally:
        await engine.dispose()
