"""Transactional outbox and its relay.

A message is written in the same transaction as the business change that
causes it, so the change and the intent to tell another service commit or
vanish together. The relay delivers each message at least once:

- claims due messages in batches with FOR UPDATE SKIP LOCKED, so any number
  of replicas share the work; a claim names its holder (the relay of one
  process), which holds a session advisory lock for as long as it lives and
  renews the lease of what it is still delivering. A claim whose holder is
  gone (its session ended: the process died, or the database restarted) is
  taken over at the next claim, within `poll_s`; a live holder is never
  raced; a lease that ran out (a holder not seen) is the last resort;
- keeps one message in flight per aggregate (the oldest pending one), so the
  steps of one target never overtake each other;
- wakes in-process right after a commit (`dispatch`), on LISTEN/NOTIFY from
  other replicas, and by polling as the last resort;
- retries failures with exponential backoff and jitter, and dead-letters a
  message after `max_attempts` (`adtech outbox list|retry`).

Handlers must be idempotent: redelivery is normal, not an error.

The `outbox_messages` table is created by the migrations of each service
that owns one (campaigns, moderation), never from here: history does not
change when this module does."""
import asyncio
import dataclasses
import json
import logging
import random
from collections.abc import Awaitable, Callable

import asyncpg
import sqlalchemy as sa

from pydantic import Field

from common import holders
from common.db import Database, UnitOfWork
from common.settings import CommonSettings

log = logging.getLogger(__name__)

# Relays LISTEN here; a commit that leaves messages due NOTIFYs it.
NOTIFY_CHANNEL = "adtech_outbox"

# A relay holds the session advisory lock (RELAY_HOLDERS, its holder id) for
# its life: the claim names the holder, and PostgreSQL releases the lock the
# moment the holder's session ends, whatever killed it (common/holders.py).
HOLDER_LOCKS = holders.RELAY_HOLDERS

# Whether the holder of claim `o` is gone.
_HOLDER_GONE = holders.gone("o.claimed_by")

# Delivered history older than the retention, oldest first, a batch at a
# time (the primary key walks it in order; old rows come first).
_PURGE = sa.text("""
    DELETE FROM outbox_messages WHERE id IN (
        SELECT id FROM outbox_messages
         WHERE status = 'delivered' AND delivered_at < now() - make_interval(secs => CAST(:keep AS float8))
         ORDER BY id LIMIT :batch)""")

_INSERT = sa.text("""
    INSERT INTO outbox_messages (topic, aggregate_id, payload, attempts, claimed_until, claimed_by)
    VALUES (:topic, :aggregate_id, CAST(:payload AS jsonb), :attempts,
            CASE WHEN CAST(:lease AS float8) > 0 THEN now() + make_interval(secs => CAST(:lease AS float8)) END,
            CAST(:holder AS integer))
    RETURNING id""")

# The oldest pending message of each aggregate, due and not under a live
# claim. SKIP LOCKED lets replicas claim disjoint batches without waiting.
_CLAIM = sa.text(f"""
    UPDATE outbox_messages m
       SET claimed_until = now() + make_interval(secs => :lease), claimed_by = :holder, attempts = m.attempts + 1
     WHERE m.id IN (
        SELECT o.id FROM outbox_messages o
         WHERE o.status = 'pending' AND o.next_attempt_at <= now()
           AND (o.claimed_until IS NULL OR o.claimed_until < now() OR {_HOLDER_GONE})
           AND NOT EXISTS (SELECT 1 FROM outbox_messages e
                            WHERE e.aggregate_id = o.aggregate_id AND e.status = 'pending' AND e.id < o.id)
         ORDER BY o.id
         LIMIT :batch
         FOR UPDATE SKIP LOCKED)
    RETURNING m.id, m.topic, m.aggregate_id, m.payload, m.attempts""")

_NOTIFY = sa.text("SELECT pg_notify(:channel, '')")

_COMPLETE = sa.text("""
    UPDATE outbox_messages SET status = 'delivered', delivered_at = now(), claimed_until = NULL, claimed_by = NULL
     WHERE id = :id AND status = 'pending'""")

# A live holder keeps what it is delivering: the lease of each is renewed.
_RENEW = sa.text("""
    UPDATE outbox_messages SET claimed_until = now() + make_interval(secs => :lease)
     WHERE id = ANY(:ids) AND claimed_by = :holder AND status = 'pending'""")

_FAIL = sa.text("""
    UPDATE outbox_messages
       SET claimed_until = NULL, claimed_by = NULL, last_error = :error,
           next_attempt_at = now() + make_interval(secs => :delay),
           status = CASE WHEN attempts >= :max_attempts THEN 'dead' ELSE 'pending' END
     WHERE id = :id AND status = 'pending' AND claimed_by IS NOT DISTINCT FROM CAST(:holder AS integer)
    RETURNING status""")


@dataclasses.dataclass(frozen=True)
class Claim:
    """Who holds a claim and for how long without renewal: a relay's own
    (`Relay.claim`), given to whoever writes messages born claimed by it."""
    holder: int
    lease_s: float


@dataclasses.dataclass(frozen=True)
class Message:
    id: int
    topic: str
    aggregate_id: str
    payload: dict
    attempts: int


async def enqueue(uow: UnitOfWork, topic: str, aggregate_id: str, payload: dict, *,
                  claim: Claim | None = None) -> Message:
    """Adds a message inside the caller's transaction. With `claim` the
    message is born claimed by that relay, which the caller has dispatch it
    in-process after commit (no polling delay); if that relay's process
    dies, any relay takes the message over at its next claim."""
    message_id = await uow.scalar(_INSERT, {
        "topic": topic, "aggregate_id": aggregate_id, "payload": json.dumps(payload),
        "attempts": 1 if claim else 0, "lease": claim.lease_s if claim else 0,
        "holder": claim.holder if claim else None})
    if claim is None:
        await wake_relays(uow)
    return Message(message_id, topic, aggregate_id, payload, 1 if claim else 0)


async def wake_relays(uow: UnitOfWork) -> None:
    """Wakes every replica's relay when the caller's transaction commits
    (PostgreSQL delivers a NOTIFY at commit, and drops it on rollback)."""
    await uow.execute(_NOTIFY, {"channel": NOTIFY_CHANNEL})


async def complete(uow: UnitOfWork, message_id: int) -> None:
    """Marks a message delivered inside the handler's own transaction."""
    await uow.execute(_COMPLETE, {"id": message_id})


# Building blocks for a business statement that also writes the outbox, so a
# hot path moves its state, completes the message it handles and writes the
# next one in ONE round trip. Parameters are prefixed `outbox_` (see
# `step_params`).
COMPLETE_CTE = """UPDATE outbox_messages SET status = 'delivered', delivered_at = now(), claimed_until = NULL,
                                           claimed_by = NULL
                   WHERE id = :outbox_done AND status = 'pending'"""


def claimed_insert_cte(source: str) -> str:
    """A CTE body that writes one claimed message per row of `source` (a
    previous CTE: no row, no message), when `outbox_topic` is not null."""
    return f"""INSERT INTO outbox_messages (topic, aggregate_id, payload, attempts, claimed_until, claimed_by)
               SELECT :outbox_topic, :outbox_aggregate, CAST(:outbox_payload AS jsonb), 1,
                      now() + make_interval(secs => CAST(:outbox_lease AS float8)), CAST(:outbox_holder AS integer)
                 FROM {source} WHERE CAST(:outbox_topic AS text) IS NOT NULL
               RETURNING id"""


def step_params(*, done: int | None = None, topic: str | None = None, aggregate_id: str | None = None,
                payload: dict | None = None, claim: Claim | None = None) -> dict:
    return {"outbox_done": done, "outbox_topic": topic, "outbox_aggregate": aggregate_id,
            "outbox_payload": json.dumps(payload or {}), "outbox_lease": claim.lease_s if claim else 0,
            "outbox_holder": claim.holder if claim else None}


Handler = Callable[[Message], Awaitable[bool]]
"""Delivers one message. Returns True when it already marked the message
delivered in its own transaction (`complete`), False to let the relay do it.
Raising means "try again later"."""


@dataclasses.dataclass
class RelayPolicy:
    """How a relay claims, retries and purges. OutboxSettings lets an
    operator tune part of it, and takes its defaults from here."""
    batch: int = 32
    lease_s: float = 30.0
    # ~300 attempts at the 60 s cap: a peer down for hours is waited for;
    # only what never succeeds ends in the dead letters (adtech verify and
    # readiness details report them; `adtech outbox retry` requeues).
    max_attempts: int = 300
    backoff_base_s: float = 0.2
    backoff_cap_s: float = 60.0
    poll_s: float = 1.0
    max_in_flight: int = 128
    retention_s: float = 24 * 3600  # delivered messages kept this long, then purged
    purge_every_s: float = 60.0
    purge_batch: int = 1000  # delivered messages deleted by one statement


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


class OutboxSettings(CommonSettings):
    """Settings of a process that runs a relay."""

    outbox_max_attempts: int = Field(default=RelayPolicy.max_attempts, ge=1, le=1000, description="Deliveries of an outbox message before it is dead-lettered")
    outbox_backoff_base_ms: int = Field(default=_ms(RelayPolicy.backoff_base_s), ge=1, le=60_000, description="First retry delay of a failed outbox delivery (doubles, with jitter)")
    outbox_backoff_cap_ms: int = Field(default=_ms(RelayPolicy.backoff_cap_s), ge=1, le=600_000, description="Longest retry delay of a failed outbox delivery")
    outbox_poll_ms: int = Field(default=_ms(RelayPolicy.poll_s), ge=10, le=60_000, description="How often a relay looks for due messages when nothing woke it")
    outbox_retention_hours: float = Field(default=RelayPolicy.retention_s // 3600, gt=0, le=24 * 365, description="How long delivered outbox messages are kept before the relay purges them")
    outbox_lease_ms: int = Field(default=_ms(RelayPolicy.lease_s), ge=100, le=3_600_000, description="How long a relay's claim on a message lasts; a claim whose holder died is retried after it")

    def relay_policy(self) -> RelayPolicy:
        return RelayPolicy(max_attempts=self.outbox_max_attempts, backoff_base_s=self.outbox_backoff_base_ms / 1000,
                           backoff_cap_s=self.outbox_backoff_cap_ms / 1000, poll_s=self.outbox_poll_ms / 1000,
                           lease_s=self.outbox_lease_ms / 1000, retention_s=self.outbox_retention_hours * 3600)


class Relay:
    def __init__(self, db: Database, handlers: dict[str, Handler], policy: RelayPolicy | None = None):
        self.db = db
        self.handlers = handlers
        self.policy = policy or RelayPolicy()
        self.holder = holders.new_holder_id()  # this process's relay, as claims name it
        self._wake = asyncio.Event()
        self._in_flight: dict[asyncio.Task, int] = {}  # delivery → message id
        self._slots = asyncio.Semaphore(self.policy.max_in_flight)
        self._listener: asyncpg.Connection | None = None  # LISTENs, and holds the holder lock
        self._channels: dict[str, Callable[[str], None]] = {NOTIFY_CHANNEL: lambda _: self.wake()}

    def listen(self, channel: str, on_payload: Callable[[str], None]) -> None:
        """Also LISTEN on `channel` (on the relay's own session, from its
        start): `on_payload(payload)` runs for each notification."""
        self._channels[channel] = on_payload

    @property
    def claim(self) -> Claim:
        """The claim this relay gives messages born claimed by it. It names
        the holder only while the holder lock is held: a claim naming a
        holder whose lock is not held would be taken over at once."""
        held = self._listener is not None and not self._listener.is_closed()
        return Claim(self.holder if held else None, self.policy.lease_s)

    def wake(self) -> None:
        self._wake.set()

    def dispatch(self, message: Message) -> asyncio.Task:
        """Delivers a message this process already holds a claim on."""
        task = asyncio.create_task(self._deliver(message))
        self._in_flight[task] = message.id
        task.add_done_callback(self._forget)
        return task

    def _forget(self, task: asyncio.Task) -> None:
        self._in_flight.pop(task, None)

    async def start(self) -> None:
        """Takes the holder lock and LISTENs, before this process writes or
        claims anything (idempotent; `run` calls it too)."""
        if self._listener is None or self._listener.is_closed():
            await self._listen()

    async def run(self) -> None:
        await self.start()
        loop = asyncio.get_running_loop()
        next_purge = next_renewal = loop.time()
        try:
            while True:
                now = loop.time()
                if now >= next_purge:
                    await self.purge_delivered()
                    next_purge = now + self.policy.purge_every_s
                if now >= next_renewal:
                    await self._keep_alive()
                    next_renewal = now + self.policy.lease_s / 3
                self._wake.clear()
                claimed = await self._claim()
                for message in claimed:
                    self.dispatch(message)
                if len(claimed) == self.policy.batch:
                    await asyncio.sleep(0)
                    continue
                try:
                    await asyncio.wait_for(self._wake.wait(), self.policy.poll_s)
                except asyncio.TimeoutError:
                    pass
        finally:
            await self.stop()

    async def purge_delivered(self) -> int:
        """Deletes delivered messages older than the retention; returns how many."""
        purged, batch = 0, self.policy.purge_batch
        try:
            while True:
                async with self.db.single_statement("purge_delivered_outbox_messages") as uow:
                    deleted = (await uow.execute(_PURGE, {"keep": self.policy.retention_s, "batch": batch})).rowcount
                purged += deleted
                if deleted < batch:
                    return purged
        except Exception:
            log.exception("purging delivered outbox messages failed; next time")
            return purged

    async def drain(self) -> None:
        """Waits for the deliveries under way (tests, graceful stop)."""
        while self._in_flight:
            await asyncio.gather(*list(self._in_flight), return_exceptions=True)

    async def stop(self) -> None:
        await self.drain()
        if self._listener is not None and not self._listener.is_closed():
            await self._listener.close()
        self._listener = None

    async def _keep_alive(self) -> None:
        """Renews the lease of what this relay is delivering, and takes the
        holder lock again if its session was lost (the database restarted)."""
        if self._listener is None or self._listener.is_closed():
            await self._listen()
        ids = list(self._in_flight.values())
        if not ids or self.claim.holder is None:
            return
        try:
            async with self.db.single_statement("renew_outbox_claims", durable=False) as uow:
                await uow.execute(_RENEW, {"ids": ids, "holder": self.holder, "lease": self.policy.lease_s})
        except Exception:
            log.warning("renewing outbox claims failed; next time", exc_info=True)

    async def _claim(self) -> list[Message]:
        free = self.policy.max_in_flight - len(self._in_flight)
        if free <= 0:
            return []
        try:
            async with self.db.single_statement("claim_outbox_messages") as uow:
                rows = (await uow.execute(_CLAIM, {
                    "lease": self.policy.lease_s, "batch": min(free, self.policy.batch),
                    "holder": self.claim.holder, "holder_locks": HOLDER_LOCKS})).all()
        except Exception:
            log.exception("claiming outbox messages failed")
            await asyncio.sleep(self.policy.poll_s)
            return []
        return [Message(r.id, r.topic, r.aggregate_id, _json(r.payload), r.attempts) for r in rows]

    async def _deliver(self, message: Message) -> None:
        async with self._slots:
            handler = self.handlers.get(message.topic)
            try:
                if handler is None:
                    raise LookupError(f"no handler for topic {message.topic}")
                handled = await handler(message)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                await self._failed(message, error)
                return
            if not handled:
                async with self.db.single_statement("complete_outbox_message") as uow:
                    await complete(uow, message.id)

    async def _failed(self, message: Message, error: Exception) -> None:
        delay = min(self.policy.backoff_cap_s, self.policy.backoff_base_s * 2 ** max(message.attempts - 1, 0))
        delay *= random.uniform(0.5, 1.0)
        text = f"{type(error).__name__}: {getattr(error, 'details', lambda: None)() or error}"[:2000]
        try:
            async with self.db.single_statement("reschedule_outbox_message") as uow:
                status = await uow.scalar(_FAIL, {
                    "id": message.id, "error": text, "delay": delay, "max_attempts": self.policy.max_attempts,
                    "holder": self.claim.holder})
            if status is None:  # another relay took the message over meanwhile: it answers for it
                return
        except Exception:
            log.exception("rescheduling outbox message %s failed; its lease will expire", message.id)
            return
        level = logging.ERROR if status == "dead" else logging.INFO
        log.log(level, "outbox delivery failed", extra={"fields": {
            "message_id": message.id, "topic": message.topic, "attempts": message.attempts,
            "status": status, "error": text, "retry_in_s": round(delay, 3)}})
        if status == "pending":
            asyncio.get_running_loop().call_later(delay, self.wake)

    async def _listen(self) -> None:
        """One session for the life of the relay: it holds the holder lock
        (so other relays see this one alive) and LISTENs for commits of other
        replicas. Without it the relay still works: it polls, and names no
        holder in its claims (their lease is then what protects them)."""
        listener = None
        try:
            listener = await asyncpg.connect(self.db.dsn)
            self.holder = await holders.take_lock(listener, HOLDER_LOCKS, self.holder)
            for channel, on_payload in self._channels.items():
                await listener.add_listener(channel, lambda _c, _pid, _ch, payload, handle=on_payload: handle(payload))
            self._listener = listener
        except Exception:
            log.warning("no holder session; polling every %ss, claims protected by their lease only",
                        self.policy.poll_s, exc_info=True)
            if listener is not None and not listener.is_closed():
                listener.terminate()
            self._listener = None


def _json(value):
    return json.loads(value) if isinstance(value, str | bytes) else value
