"""Moderation's tables and queries. Every saga move is a guarded UPDATE
(`WHERE status = :from`), so a redelivered step finds nothing to move and
changes nothing. A step's move, the completion of the message it handled
and the next message are one statement, which is its own transaction: one
round trip per step (run them with `Database.single_statement`)."""
import datetime as dt
import functools
import uuid

import sqlalchemy as sa

from common import outbox
from common.db import UnitOfWork
from services.moderation.domain import LIVE, SETTLED, SETTLED_CHANNEL, Decision, assert_saga_move

_COLUMNS = """id::text, target_id::text, kind, status, moderator_id::text, reason, reason_message,
              escrow_id::text, post_job_id::text, advertiser_id::text, publisher_id::text, amount, currency"""
_LIVE = "(" + ", ".join(f"'{status}'" for status in LIVE) + ")"  # as one_live_approve_per_target names them


def _decision(row) -> Decision | None:
    if row is None:
        return None
    return Decision(**{k: v for k, v in row._mapping.items() if k not in ("follow_id", "notified")})


_SETTLED = "(" + ", ".join(f"'{status}'" for status in sorted(SETTLED)) + ")"


def _with_outbox(change: str) -> sa.TextClause:
    """`change` (an INSERT or UPDATE of decisions) plus the outbox work of
    the step; yields the changed decision and the id of the next message.
    A decision that ends is announced (NOTIFY, at commit) to every replica,
    where an approve may be waiting for it, unless `announce` is false: the
    process ending it answers its own waiters, and NOTIFY is not free (it
    takes a global lock at commit and wakes every listener)."""
    return sa.text(f"""
        WITH changed AS ({change} RETURNING {_COLUMNS}),
             done AS ({outbox.COMPLETE_CTE}),
             follow AS ({outbox.claimed_insert_cte("changed")}),
             announced AS (SELECT pg_notify('{SETTLED_CHANNEL}', id) FROM changed
                            WHERE status IN {_SETTLED} AND CAST(:announce AS boolean))
        SELECT changed.*, (SELECT id FROM follow) AS follow_id, (SELECT count(*) FROM announced) AS notified
          FROM changed""")


# Nothing is written when the target has an approved decision (it answers)
# or a live approve (one_live_approve_per_target: the caller joins it).
_START = _with_outbox(f"""
    INSERT INTO decisions (id, target_id, kind, status, moderator_id)
    SELECT CAST(:id AS uuid), CAST(:target_id AS uuid), 'approve', 'pending', CAST(:moderator_id AS uuid)
     WHERE NOT EXISTS (SELECT FROM decisions WHERE target_id = CAST(:target_id AS uuid) AND status = 'approved')
    ON CONFLICT (target_id) WHERE kind = 'approve' AND status IN {_LIVE} DO NOTHING""")


async def start_approve(uow: UnitOfWork, target_id: str, moderator_id: str, first_topic: str,
                        claim: outbox.Claim) -> tuple[Decision, outbox.Message] | None:
    """The decision and its first step, born claimed; None when another
    approve of the target is live (one_live_approve_per_target): join it."""
    decision_id = str(uuid.uuid4())
    payload = {"decision_id": decision_id, "moderator_id": moderator_id}
    row = (await uow.execute(_START, {
        "id": decision_id, "target_id": target_id, "moderator_id": moderator_id,
        **outbox.step_params(topic=first_topic, aggregate_id=target_id, payload=payload, claim=claim),
        "announce": False})).first()
    if row is None:
        return None
    return _decision(row), outbox.Message(row.follow_id, first_topic, target_id, payload, 1)


async def advance(uow: UnitOfWork, decision_id: str, current: str, wanted: str, *, done: int,
                  follow: tuple[str, str, dict] | None = None, claim: outbox.Claim | None = None,
                  announce: bool = True, **fields) -> tuple[Decision | None, outbox.Message | None]:
    """Moves the decision from `current` to `wanted` (setting `fields`),
    completes message `done` and, if it moved, writes `follow` (topic,
    aggregate, payload) born claimed; a move that ends the decision is
    announced to every replica when `announce`. (None, None) when the
    decision was no longer in `current`: a redelivered step."""
    assert_saga_move(current, wanted)
    return await _step(uow, _advance_statement(tuple(sorted(fields))),
                       {"id": decision_id, "current": current, "wanted": wanted, "announce": announce, **fields},
                       done, follow, claim)


@functools.lru_cache(maxsize=32)
def _advance_statement(field_names: tuple[str, ...]) -> sa.TextClause:
    """Built once per set of columns a move sets (a handful exist)."""
    sets = "".join(f", {name} = :{name}" for name in field_names)
    return _with_outbox(f"""
        UPDATE decisions SET status = :wanted, updated_at = now(){sets}
         WHERE id = :id AND status = :current""")


_NOTE_FAILURE = _with_outbox("""
    UPDATE decisions SET reason = :reason, reason_message = :message, updated_at = now()
     WHERE id = :id AND status = :status AND reason IS NULL""")


async def note_failure(uow: UnitOfWork, decision_id: str, status: str, reason: str, message: str, *, done: int,
                       follow: tuple[str, str, dict], claim: outbox.Claim) -> tuple[Decision | None, outbox.Message | None]:
    """Records why a saga will fail while its compensation (`follow`) runs;
    the decision keeps its status until the compensation is done."""
    return await _step(uow, _NOTE_FAILURE, {"id": decision_id, "status": status, "reason": reason, "message": message,
                                            "announce": False}, done, follow, claim)


async def _step(uow, statement, params, done, follow, claim):
    topic, aggregate_id, payload = follow or (None, None, None)
    row = (await uow.execute(statement, {**params, **outbox.step_params(
        done=done, topic=topic, aggregate_id=aggregate_id, payload=payload, claim=claim)})).first()
    if row is None:
        return None, None
    message = outbox.Message(row.follow_id, topic, aggregate_id, payload, 1) if row.follow_id else None
    return _decision(row), message


_START_REJECT = _with_outbox("""
    INSERT INTO decisions (id, target_id, kind, status, moderator_id, reason)
    VALUES (:id, :target_id, 'reject', 'pending', :moderator_id, :reason)
    ON CONFLICT (target_id) WHERE kind = 'reject' AND status = 'pending' DO NOTHING""")


async def start_reject(uow: UnitOfWork, target_id: str, moderator_id: str, reason: str, topic: str,
                       claim: outbox.Claim) -> tuple[Decision, outbox.Message] | None:
    """A pending reject decision and its one step, born claimed; None when
    a reject of the target is pending already (one_pending_reject_per_target)."""
    decision_id = str(uuid.uuid4())
    payload = {"decision_id": decision_id, "moderator_id": moderator_id, "reason": reason}
    row = (await uow.execute(_START_REJECT, {
        "id": decision_id, "target_id": target_id, "moderator_id": moderator_id, "reason": reason,
        **outbox.step_params(topic=topic, aggregate_id=target_id, payload=payload, claim=claim),
        "announce": False})).first()
    if row is None:
        return None
    return _decision(row), outbox.Message(row.follow_id, topic, target_id, payload, 1)


async def pending_reject(uow: UnitOfWork, target_id: str) -> Decision | None:
    row = (await uow.execute(sa.text(f"""
        SELECT {_COLUMNS} FROM decisions WHERE target_id = :t AND kind = 'reject' AND status = 'pending'"""),
        {"t": target_id})).first()
    return _decision(row)


async def current_approve(uow: UnitOfWork, target_id: str) -> Decision | None:
    """The approve that counts for a target now: the successful one, else the live one."""
    row = (await uow.execute(sa.text(f"""
        SELECT {_COLUMNS} FROM decisions
         WHERE target_id = :t AND kind = 'approve' AND (status = 'approved' OR status IN {_LIVE})
         ORDER BY (status = 'approved') DESC LIMIT 1"""), {"t": target_id})).first()
    return _decision(row)


# A decision that decided something: not a reject that campaigns refused,
# nor an approve refused in its first step (domain.refused_at_start).
_DECIDED = """NOT (kind = 'reject' AND status = 'failed')
              AND NOT (kind = 'approve' AND status = 'failed' AND advertiser_id IS NULL)"""


async def latest_decision(uow: UnitOfWork, target_id: str) -> Decision | None:
    """The newest decision about a target. A reject that campaigns refused
    decided nothing (the target was not submitted, or an approve won), nor
    did an approve that campaigns refused in its first step (it never
    reserved the target, so it has no terms: domain.refused_at_start)."""
    row = (await uow.execute(sa.text(f"""
        SELECT {_COLUMNS} FROM decisions
         WHERE target_id = :t AND {_DECIDED}
         ORDER BY created_at DESC, (status = 'approved') DESC LIMIT 1"""), {"t": target_id})).first()
    return _decision(row)


async def target_decisions(uow: UnitOfWork, target_id: str, limit: int,
                           after: tuple[dt.datetime, uuid.UUID] | None) -> list[Decision]:
    """A target's decisions that decided something, newest first, from
    after the keyset `after` (created_at, id) of the previous page; `limit`
    rows at most (decisions_by_target serves it)."""
    keyset = "AND (created_at, id) < (:after_at, :after_id)" if after else ""
    rows = await uow.execute(sa.text(f"""
        SELECT {_COLUMNS}, created_at AS decided_at FROM decisions
         WHERE target_id = :t AND {_DECIDED} {keyset}
         ORDER BY created_at DESC, id DESC LIMIT :limit"""),
        {"t": target_id, "limit": limit, **({"after_at": after[0], "after_id": after[1]} if after else {})})
    return [_decision(row) for row in rows]


async def get_decision(uow: UnitOfWork, decision_id: str) -> Decision | None:
    row = (await uow.execute(sa.text(f"SELECT {_COLUMNS} FROM decisions WHERE id = :id"), {"id": decision_id})).first()
    return _decision(row)


async def live_decisions(uow: UnitOfWork) -> list[Decision]:
    rows = await uow.execute(sa.text(f"""
        SELECT {_COLUMNS} FROM decisions WHERE kind = 'approve' AND status IN {_LIVE} ORDER BY created_at"""))
    return [_decision(row) for row in rows]
