"""Payments' business acts, one unit of work each, named for the act."""
import dataclasses
import datetime as dt
import uuid

from sqlalchemy.exc import DBAPIError

from common.db import Database, is_unique_violation
from common.errors import Conflict
from common.pagination import decode_cursor, encode_cursor
from services.payments import domain
from services.payments.store import deposits, escrows, ledger, reconcile as checks
from services.payments.store.escrows import EscrowRow
from services.payments.store.ledger import Leg


@dataclasses.dataclass(frozen=True)
class Wallet:
    user_id: str
    currency: str
    balance: int
    held: int


@dataclasses.dataclass(frozen=True)
class DepositResult:
    transaction_id: str
    wallet: Wallet
    replayed: bool


@dataclasses.dataclass(frozen=True)
class CloseResult:
    escrow: EscrowRow | None
    moved: bool


class Payments:
    def __init__(self, db: Database, fee_bps: int):
        self.db = db
        self.fee_bps = fee_bps

    async def deposit(self, user_id: str, amount: int, currency: str, key: str, reference: str) -> DepositResult:
        """Credits a wallet from external funding once per idempotency key;
        a repeat with the same body answers the first result."""
        fingerprint = domain.deposit_fingerprint(user_id, amount, currency, reference)

        async def attempt() -> DepositResult:
            async with self.db.unit_of_work("deposit") as uow:
                if not await deposits.claim(uow, key, fingerprint, user_id, currency):
                    first = await deposits.stored(uow, key)
                    if first.fingerprint != fingerprint:
                        raise domain.IdempotencyKeyReused("idempotency key was used with a different deposit")
                    return DepositResult(first.transaction_id, Wallet(
                        first.user_id, first.currency, first.balance_after, first.held_after), replayed=True)
                accounts = await ledger.lock_accounts(uow, currency, [user_id], [domain.EXTERNAL])
                tx = await ledger.post(uow, domain.DEPOSIT, reference, [
                    Leg(accounts.system(domain.EXTERNAL), domain.DEPOSIT, -amount),
                    Leg(accounts.wallet(user_id), domain.DEPOSIT, amount)])
                balance, held = await ledger.wallet(uow, user_id, currency)
                await deposits.record_result(uow, key, tx, balance, held)
                await uow.commit()
                return DepositResult(tx, Wallet(user_id, currency, balance, held), replayed=False)

        return await self._retrying(attempt)

    async def wallet(self, user_id: str, currency: str) -> Wallet:
        async with self.db.unit_of_work("read_wallet") as uow:
            balance, held = await ledger.wallet(uow, user_id, currency)
        return Wallet(user_id, currency, balance, held)

    async def ledger_page(self, user_id: str, currency: str, cursor: str, limit: int) -> tuple[list, str]:
        """A wallet's entries, newest first; keyset on the account version."""
        before = decode_cursor(cursor, int)
        async with self.db.unit_of_work("read_ledger") as uow:
            rows = await ledger.ledger_page(uow, user_id, currency, before[0] if before else None, limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        return rows, encode_cursor(rows[-1].account_version) if more else ""

    async def hold_escrow(self, terms: domain.HoldTerms) -> EscrowRow:
        """Moves the price from the advertiser's spendable balance into
        escrow, once per target; the outcome is recorded for the decision
        and a repeat answers it (DESIGN.md saga rules 3 and 7)."""
        async def attempt() -> EscrowRow:
            async with self.db.unit_of_work("hold_escrow") as uow:
                await escrows.lock_target(uow, terms.target_id)
                recorded, existing = await escrows.hold_state(uow, terms.decision_id, terms.target_id)
                if domain.judge_hold(terms, recorded, existing) == domain.SAME_ESCROW:
                    return existing
                accounts = await ledger.lock_accounts(uow, terms.currency, [terms.advertiser_id], [domain.ESCROW])
                wallet = accounts.wallet(terms.advertiser_id)
                debited = await ledger.debit(uow, wallet, terms.amount)
                if debited is None:
                    refusal = domain.insufficient_funds(wallet.balance, terms.amount)
                    await escrows.record_refusal(uow, terms, refusal.message)
                    await uow.commit()
                    raise refusal
                tx = await ledger.post(uow, domain.ESCROW_HOLD, terms.target_id, [
                    Leg(wallet, domain.ESCROW_HOLD, -terms.amount),
                    Leg(accounts.system(domain.ESCROW), domain.ESCROW_HOLD, terms.amount)],
                    {wallet.id: debited})
                escrow = await escrows.create(uow, terms, tx)
                await uow.commit()
                return escrow

        return await self._retrying(attempt)

    async def release_escrow(self, target_id: str) -> EscrowRow:
        """Pays a held escrow to the publisher less the platform fee; a
        repeat answers the same release without paying twice."""
        async def attempt() -> EscrowRow:
            async with self.db.unit_of_work("release_escrow") as uow:
                escrow = await escrows.by_target(uow, target_id, for_update=True)
                verdict = domain.judge_close(target_id, escrow and escrow.status, domain.RELEASED)
                if verdict == domain.SAME_ESCROW:
                    return escrow
                payout, fee = domain.release_split(escrow.amount, self.fee_bps)
                accounts = await ledger.lock_accounts(uow, escrow.currency, [escrow.publisher_id],
                                                      [domain.ESCROW, domain.PLATFORM_FEE])
                held = accounts.system(domain.ESCROW)
                legs = [Leg(held, domain.ESCROW_RELEASE, -escrow.amount)]
                if payout:
                    legs.append(Leg(accounts.wallet(escrow.publisher_id), domain.ESCROW_RELEASE, payout))
                if fee:
                    legs.append(Leg(accounts.system(domain.PLATFORM_FEE), domain.FEE, fee))
                tx = await self._move_out_of_escrow(uow, held, escrow, domain.ESCROW_RELEASE, legs)
                closed = await escrows.close(uow, escrow, domain.RELEASED, fee, tx)
                await uow.commit()
                return closed

        return await self._retrying(attempt)

    async def refund_escrow(self, target_id: str) -> CloseResult:
        """Returns a held escrow to the advertiser. A repeat, a second
        sender, or a target that never had an escrow succeeds without moving
        money (DESIGN.md saga rule 6); a released escrow is refused."""
        async def attempt() -> CloseResult:
            async with self.db.unit_of_work("refund_escrow") as uow:
                escrow = await escrows.by_target(uow, target_id, for_update=True)
                if escrow is None:
                    return CloseResult(None, moved=False)
                if domain.judge_close(target_id, escrow.status, domain.REFUNDED) == domain.SAME_ESCROW:
                    return CloseResult(escrow, moved=False)
                accounts = await ledger.lock_accounts(uow, escrow.currency, [escrow.advertiser_id], [domain.ESCROW])
                held = accounts.system(domain.ESCROW)
                tx = await self._move_out_of_escrow(uow, held, escrow, domain.ESCROW_REFUND, [
                    Leg(held, domain.ESCROW_REFUND, -escrow.amount),
                    Leg(accounts.wallet(escrow.advertiser_id), domain.ESCROW_REFUND, escrow.amount)])
                closed = await escrows.close(uow, escrow, domain.REFUNDED, None, tx)
                await uow.commit()
                return CloseResult(closed, moved=True)

        return await self._retrying(attempt)

    async def escrow(self, target_id: str) -> EscrowRow:
        async with self.db.unit_of_work("read_escrow") as uow:
            escrow = await escrows.by_target(uow, target_id)
        if escrow is None:
            raise domain.EscrowNotFound(f"target {target_id} has no escrow")
        return escrow

    async def escrows_page(self, cursor: str, limit: int) -> tuple[list[EscrowRow], str]:
        after = decode_cursor(cursor, dt.datetime, uuid.UUID)
        async with self.db.unit_of_work("list_escrows") as uow:
            rows = await escrows.page(uow, after, limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        return rows, encode_cursor(rows[-1].created_at, rows[-1].id) if more else ""

    async def reconcile(self) -> list[checks.CheckResult]:
        """Every ledger invariant, checked on one consistent snapshot."""
        async with self.db.unit_of_work("reconcile_ledger") as uow:
            await checks.snapshot(uow)
            return await checks.run(uow)

    @staticmethod
    async def _move_out_of_escrow(uow, held, escrow: EscrowRow, kind: str, legs: list[Leg]) -> str:
        debited = await ledger.debit(uow, held, escrow.amount)
        if debited is None:  # the escrow account always covers its held escrows (reconcile checks it)
            raise RuntimeError(f"escrow account {held.id} does not cover escrow {escrow.id}")
        return await ledger.post(uow, kind, escrow.target_id, legs, {held.id: debited})

    async def _retrying(self, attempt):
        """Serialization failures and deadlocks retry the whole unit; so
        does losing a race on a unique key, after which the retry finds and
        answers the winner's result."""
        for _ in range(3):
            try:
                return await self.db.retrying(attempt)
            except DBAPIError as error:
                if not is_unique_violation(error):
                    raise
        raise Conflict("a concurrent request for the same key won; try again")
