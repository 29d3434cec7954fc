"""Who holds a claim, and whether they still live: a worker (an outbox
relay, a publisher) holds a session advisory lock (kind, holder id) for as
long as it lives, and names the holder id in the rows it claims. PostgreSQL
releases the lock the moment the holder's session ends, whatever killed
the process, so `gone(...)` tells within one statement that a claim's
holder is dead, without waiting for its lease to run out."""
import asyncio
import random

import asyncpg

# The first key of each kind of holder lock (pg_locks.classid).
RELAY_HOLDERS = 0x0AD7EC
PUBLISHER_HOLDERS = 0x0AD7ED


def gone(claimed_by: str, kind_param: str = "holder_locks") -> str:
    """SQL: the holder named in column `claimed_by` is gone (it named itself
    and its lock of kind `:kind_param` is not held in this database)."""
    return f"""({claimed_by} IS NOT NULL AND NOT EXISTS (
        SELECT FROM pg_locks l
         WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
           AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
           AND l.classid = CAST(CAST(:{kind_param} AS integer) AS oid) AND l.objid = CAST({claimed_by} AS oid)))"""


def new_holder_id() -> int:
    return random.randint(1, 2**31 - 1)


async def take_lock(session: asyncpg.Connection, kind: int, holder: int) -> int:
    """Takes the holder lock on `session` and returns the holder id it is
    held under. Never waits: a session lost half-open may still hold the old
    id's lock, so a holder coming back takes a fresh id (its old claims are
    then taken over like those of any holder that is gone)."""
    while not await session.fetchval("SELECT pg_try_advisory_lock($1, $2)", kind, holder):
        holder = new_holder_id()
    return holder


class HolderSession:
    """A worker's own session holding its holder lock for its life. `id` is
    None while no session holds it (the worker then claims nothing that a
    dead-holder sweep could take from it wrongly: it waits for the next
    `ensure`)."""

    def __init__(self, dsn: str, kind: int):
        self.dsn, self.kind = dsn, kind
        self._holder = new_holder_id()
        self._session: asyncpg.Connection | None = None

    @property
    def id(self) -> int | None:
        return self._holder if self._session is not None and not self._session.is_closed() else None

    async def ensure(self) -> int | None:
        """Takes the lock again when the session was lost (the database
        restarted); the holder id, or None when the database is unreachable."""
        if self.id is None:
            try:
                session = await asyncpg.connect(self.dsn)
                self._holder = await take_lock(session, self.kind, self._holder)
                self._session = session
            except (OSError, asyncpg.PostgresError):
                self._session = None
        return self.id

    async def close(self) -> None:
        if self._session is not None and not self._session.is_closed():
            await self._session.close()
        self._session = None


# The one key of each kind of leader lock (pg_locks.classid; objid 0).
BOT_LEADER = 0x0AD7EE


class Leadership:
    """Exactly one process of a kind leads: the one whose own session holds
    the advisory lock (kind, 0). PostgreSQL drops it with the session, so
    when the leader dies another process takes over at its next `ensure`;
    TCP keepalives end a session whose peer vanished within about a minute."""

    CHECK_TIMEOUT_S = 5.0
    KEEPALIVES = {"tcp_keepalives_idle": "20", "tcp_keepalives_interval": "5", "tcp_keepalives_count": "4"}

    def __init__(self, dsn: str, kind: int):
        self.dsn, self.kind = dsn, kind
        self._session: asyncpg.Connection | None = None
        self._leads = False

    async def ensure(self) -> bool:
        """True while this process leads: it still holds the lock, or has just
        taken it; False while another does, or the database is unreachable.
        A follower keeps its session and asks again on it."""
        try:
            if self._session is None or self._session.is_closed():
                self._leads = False
                self._session = await asyncpg.connect(self.dsn, server_settings=self.KEEPALIVES,
                                                      timeout=self.CHECK_TIMEOUT_S)
            if self._leads:
                await self._session.fetchval("SELECT 1", timeout=self.CHECK_TIMEOUT_S)  # the lock lives with it
            else:
                self._leads = bool(await self._session.fetchval(
                    "SELECT pg_try_advisory_lock($1, 0)", self.kind, timeout=self.CHECK_TIMEOUT_S))
            return self._leads
        except (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
            await self.close()
            return False

    async def close(self) -> None:
        session, self._session, self._leads = self._session, None, False
        if session is not None and not session.is_closed():
            session.terminate()  # never waits: the lock goes with the session either way
