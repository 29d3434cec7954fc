"""Escrows (one per target id, ever) and the HoldEscrow outcome recorded
per approve decision."""
import dataclasses
import datetime as dt
import uuid

import sqlalchemy as sa

from common.db import UnitOfWork
from services.payments import domain

_COLUMNS = """CAST(id AS text) AS id, CAST(target_id AS text) AS target_id, CAST(decision_id AS text) AS decision_id,
              CAST(advertiser_id AS text) AS advertiser_id, CAST(publisher_id AS text) AS publisher_id,
              amount, currency, status, fee, created_at, updated_at"""

# Holds of one target queue here, so "is there an escrow or a recorded
# outcome?" and acting on the answer happen as one step. UNIQUE(target_id)
# and the decision primary key stay the last word should anything slip by.
_LOCK_TARGET = sa.text("SELECT pg_advisory_xact_lock(hashtextextended('escrow-target:' || :target, 0))")

_HOLD_STATE = sa.text(f"""
    SELECT CAST(d.target_id AS text) AS recorded_target, d.outcome AS recorded_outcome, d.message AS recorded_message, e.*
      FROM (SELECT 1) AS one
      LEFT JOIN escrow_decisions AS d ON d.decision_id = :decision
      LEFT JOIN (SELECT {_COLUMNS} FROM escrows WHERE target_id = :target) AS e ON true""")

_BY_TARGET = sa.text(f"SELECT {_COLUMNS} FROM escrows WHERE target_id = :target")
_BY_TARGET_FOR_UPDATE = sa.text(f"SELECT {_COLUMNS} FROM escrows WHERE target_id = :target FOR UPDATE")

_INSERT = sa.text(f"""
    WITH decided AS (
        INSERT INTO escrow_decisions (decision_id, target_id, outcome) VALUES (:decision, :target, 'held'))
    INSERT INTO escrows (id, target_id, decision_id, advertiser_id, publisher_id, amount, currency, hold_transaction_id)
    VALUES (:id, :target, :decision, :advertiser, :publisher, :amount, :currency, :tx)
    RETURNING {_COLUMNS}""")

_REFUSED = sa.text("""
    INSERT INTO escrow_decisions (decision_id, target_id, outcome, message)
    VALUES (:decision, :target, 'insufficient_funds', :message)""")

# Guarded: only a held escrow closes, and only once.
_CLOSE = sa.text(f"""
    UPDATE escrows SET status = :status, fee = :fee, close_transaction_id = :tx, updated_at = now()
     WHERE id = :id AND status = 'held'
    RETURNING {_COLUMNS}""")

_PAGE = sa.text(f"""
    SELECT {_COLUMNS} FROM escrows
     WHERE (created_at, id) < (:created_at, :id)
     ORDER BY created_at DESC, id DESC LIMIT :limit""")


@dataclasses.dataclass(frozen=True)
class EscrowRow:
    id: str
    target_id: str
    decision_id: str
    advertiser_id: str
    publisher_id: str
    amount: int
    currency: str
    status: str
    fee: int | None
    created_at: dt.datetime
    updated_at: dt.datetime

    @property
    def terms(self) -> domain.HoldTerms:
        return domain.HoldTerms(self.target_id, self.decision_id, self.advertiser_id, self.publisher_id,
                                self.amount, self.currency)

    @property
    def state(self) -> domain.EscrowState:
        return domain.EscrowState(self.terms, self.status)


def _escrow(row) -> EscrowRow | None:
    if row is None or row.id is None:
        return None
    return EscrowRow(row.id, row.target_id, row.decision_id, row.advertiser_id, row.publisher_id, row.amount,
                     row.currency, row.status, row.fee, row.created_at, row.updated_at)


async def lock_target(uow: UnitOfWork, target_id: str) -> None:
    await uow.execute(_LOCK_TARGET, {"target": target_id})


async def hold_state(uow: UnitOfWork, decision_id: str, target_id: str) -> tuple[domain.RecordedHold | None, EscrowRow | None]:
    """What a hold for (decision, target) finds: the decision's recorded
    outcome and the target's escrow, either possibly absent."""
    row = (await uow.execute(_HOLD_STATE, {"decision": decision_id, "target": target_id})).one()
    recorded = None if row.recorded_outcome is None else domain.RecordedHold(
        row.recorded_target, row.recorded_outcome, row.recorded_message)
    return recorded, _escrow(row)


async def by_target(uow: UnitOfWork, target_id: str, *, for_update: bool = False) -> EscrowRow | None:
    statement = _BY_TARGET_FOR_UPDATE if for_update else _BY_TARGET
    return _escrow((await uow.execute(statement, {"target": target_id})).first())


async def create(uow: UnitOfWork, terms: domain.HoldTerms, hold_tx: str) -> EscrowRow:
    """The held escrow and the decision's 'held' outcome, in one statement."""
    row = (await uow.execute(_INSERT, {
        "id": str(uuid.uuid4()), "target": terms.target_id, "decision": terms.decision_id,
        "advertiser": terms.advertiser_id, "publisher": terms.publisher_id, "amount": terms.amount,
        "currency": terms.currency, "tx": hold_tx})).one()
    return _escrow(row)


async def record_refusal(uow: UnitOfWork, terms: domain.HoldTerms, message: str) -> None:
    await uow.execute(_REFUSED, {"decision": terms.decision_id, "target": terms.target_id, "message": message})


async def close(uow: UnitOfWork, escrow: EscrowRow, status: str, fee: int | None, tx: str) -> EscrowRow | None:
    """held → released | refunded; None when it was no longer held."""
    row = (await uow.execute(_CLOSE, {"id": escrow.id, "status": status, "fee": fee, "tx": tx})).first()
    return _escrow(row)


async def page(uow: UnitOfWork, after: tuple[dt.datetime, uuid.UUID] | None, limit: int) -> list[EscrowRow]:
    created_at, escrow_id = after or (dt.datetime.max.replace(tzinfo=dt.timezone.utc), uuid.UUID(int=2**128 - 1))
    rows = (await uow.execute(_PAGE, {"created_at": created_at, "id": escrow_id, "limit": limit})).all()
    return [_escrow(r) for r in rows]
