"""Moderation's tables and queries. Every saga move is a guarded UPDATE
(`WHERE status = :from`), so a redelivered step finds nothing to move and
changes nothing."""
import uuid

import sqlalchemy as sa

from common.db import UnitOfWork, is_unique_violation
from services.moderation.domain import Decision, assert_saga_move

_COLUMNS = """id::text, target_id::text, kind, status, moderator_id::text, reason, reason_message,
              escrow_id::text, post_job_id::text, advertiser_id::text, publisher_id::text, amount, currency"""


def _decision(row) -> Decision | None:
    return Decision(**row._mapping) if row is not None else None


class LiveApproveExists(Exception):
    """Another approve of the target committed first; join it."""


async def insert_approve(uow: UnitOfWork, target_id: str, moderator_id: str) -> Decision:
    decision_id = str(uuid.uuid4())
    try:
        async with uow.savepoint():
            row = (await uow.execute(sa.text(f"""
                INSERT INTO decisions (id, target_id, kind, status, moderator_id)
                VALUES (:id, :target_id, 'approve', 'pending', :moderator_id)
                RETURNING {_COLUMNS}"""), {"id": decision_id, "target_id": target_id, "moderator_id": moderator_id})).one()
    except sa.exc.IntegrityError as error:
        if is_unique_violation(error, "one_live_approve_per_target"):
            raise LiveApproveExists(target_id) from None
        raise
    return _decision(row)


async def insert_reject(uow: UnitOfWork, target_id: str, moderator_id: str, reason: str) -> Decision:
    row = (await uow.execute(sa.text(f"""
        INSERT INTO decisions (id, target_id, kind, status, moderator_id, reason)
        VALUES (:id, :target_id, 'reject', 'rejected', :moderator_id, :reason)
        RETURNING {_COLUMNS}"""), {"id": str(uuid.uuid4()), "target_id": target_id,
                                  "moderator_id": moderator_id, "reason": reason})).one()
    return _decision(row)


async def current_approve(uow: UnitOfWork, target_id: str) -> Decision | None:
    """The approve that counts for a target now: the successful one, else the live one."""
    row = (await uow.execute(sa.text(f"""
        SELECT {_COLUMNS} FROM decisions
         WHERE target_id = :t AND kind = 'approve'
           AND status IN ('approved', 'pending', 'reserved', 'escrow_held', 'compensating')
         ORDER BY (status = 'approved') DESC LIMIT 1"""), {"t": target_id})).first()
    return _decision(row)


async def latest_decision(uow: UnitOfWork, target_id: str) -> Decision | None:
    row = (await uow.execute(sa.text(f"""
        SELECT {_COLUMNS} FROM decisions WHERE target_id = :t
         ORDER BY created_at DESC, (status = 'approved') DESC LIMIT 1"""), {"t": target_id})).first()
    return _decision(row)


async def get_decision(uow: UnitOfWork, decision_id: str) -> Decision | None:
    row = (await uow.execute(sa.text(f"SELECT {_COLUMNS} FROM decisions WHERE id = :id"), {"id": decision_id})).first()
    return _decision(row)


async def live_decisions(uow: UnitOfWork) -> list[Decision]:
    rows = (await uow.execute(sa.text(f"""
        SELECT {_COLUMNS} FROM decisions WHERE kind = 'approve'
           AND status IN ('pending', 'reserved', 'escrow_held', 'compensating') ORDER BY created_at""")))
    return [_decision(row) for row in rows]


async def move(uow: UnitOfWork, decision_id: str, current: str, wanted: str, **fields) -> Decision | None:
    """Moves a decision from `current` to `wanted`, setting `fields`; None
    when it is no longer in `current` (a redelivered step: nothing to do)."""
    assert_saga_move(current, wanted)
    assignments = "".join(f", {name} = :{name}" for name in fields)
    row = (await uow.execute(sa.text(f"""
        UPDATE decisions SET status = :wanted, updated_at = now(){assignments}
         WHERE id = :id AND status = :current
        RETURNING {_COLUMNS}"""), {"id": decision_id, "current": current, "wanted": wanted, **fields})).first()
    return _decision(row)


async def note_pending_failure(uow: UnitOfWork, decision_id: str, status: str, reason: str, message: str) -> bool:
    """Records why a saga will fail while its compensation is still running."""
    result = await uow.execute(sa.text("""
        UPDATE decisions SET reason = :reason, reason_message = :message, updated_at = now()
         WHERE id = :id AND status = :status AND reason IS NULL"""),
        {"id": decision_id, "status": status, "reason": reason, "message": message})
    return result.rowcount == 1
