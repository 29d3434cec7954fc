"""Escrows (one per target id, ever): reading them. Holding one is
store/holds.py, closing one store/settlements.py."""
import dataclasses
import datetime as dt
import uuid

import sqlalchemy as sa

from common.db import UnitOfWork
from services.payments import domain

COLUMNS = """CAST(id AS text) AS id, CAST(target_id AS text) AS target_id, CAST(decision_id AS text) AS decision_id,
              CAST(advertiser_id AS text) AS advertiser_id, CAST(publisher_id AS text) AS publisher_id,
              amount, currency, status, fee, created_at, updated_at"""

_BY_TARGET = sa.text(f"SELECT {COLUMNS} FROM escrows WHERE target_id = :target")

_PAGE = sa.text(f"""
    SELECT {COLUMNS} FROM escrows
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


def escrow_from(row) -> EscrowRow | None:
    if row is None or row.id is None:
        return None
    return EscrowRow(row.id, row.target_id, row.decision_id, row.advertiser_id, row.publisher_id, row.amount,
                     row.currency, row.status, row.fee, row.created_at, row.updated_at)


async def by_target(uow: UnitOfWork, target_id: str) -> EscrowRow | None:
    return escrow_from((await uow.execute(_BY_TARGET, {"target": target_id})).first())


async def page(uow: UnitOfWork, after: tuple[dt.datetime, uuid.UUID] | None, limit: int) -> list[EscrowRow]:
    created_at, escrow_id = after or (dt.datetime.max.replace(tzinfo=dt.timezone.utc), uuid.UUID(int=2**128 - 1))
    rows = (await uow.execute(_PAGE, {"created_at": created_at, "id": escrow_id, "limit": limit})).all()
    return [escrow_from(r) for r in rows]
