"""Alembic for every service: each service keeps its own tree under
`services/<context>/migrations`, whose env.py calls `run_env()`."""
import asyncio
import pathlib

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.ext.asyncio import create_async_engine

SERVICES_DIR = pathlib.Path(__file__).resolve().parent.parent / "services"
# Serialises concurrent migrators of one database (several replicas starting).
MIGRATION_LOCK_KEY = 7_340_001


def alembic_config(context: str, url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(SERVICES_DIR / context / "migrations"))
    config.attributes["url"] = url
    return config


def upgrade(context: str, url: str, revision: str = "head") -> None:
    """Blocking; call through asyncio.to_thread from async code."""
    command.upgrade(alembic_config(context, url), revision)


async def upgrade_async(context: str, url: str) -> None:
    await asyncio.to_thread(upgrade, context, url)


def run_env() -> None:
    """Body of every service's migrations/env.py (online mode only)."""
    from alembic import context

    url = context.config.attributes["url"]

    def run(connection) -> None:
        context.configure(connection=connection, target_metadata=None, transaction_per_migration=True)
        with context.begin_transaction():
            context.run_migrations()

    async def main() -> None:
        engine = create_async_engine(url, poolclass=sa.pool.NullPool)
        try:
            async with engine.connect() as connection:
                await connection.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK_KEY})
                await connection.commit()
                await connection.run_sync(run)
                await connection.commit()
        finally:
            await engine.dispose()

    asyncio.run(main())
