"""Payments' business acts, one unit of work each, named for the act."""
import dataclasses
import datetime as dt
import uuid

from common.db import Database, DatabaseError, is_unique_violation, sqlstate
from common.errors import Conflict, InvalidInput
from common.pagination import decode_cursor, encode_cursor
from services.payments import domain
from services.payments.store import deposits, escrows, holds, ledger, reconcile as checks
from services.payments.store.escrows import EscrowRow
from services.payments.store.ledger import Leg

NUMERIC_OUT_OF_RANGE = "22003"


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
                claimed, held = await deposits.claim(uow, key, fingerprint, user_id, currency)
                if not claimed:
                    first = await deposits.stored(uow, key)
                    if first.fingerprint != fingerprint:
                        raise domain.IdempotencyKeyReused("idempotency key was used with a different deposit")
                    return DepositResult(first.transaction_id, Wallet(
                        first.user_id, first.currency, first.balance_after, first.held_after), replayed=True)
                accounts = await ledger.lock_accounts(uow, currency, [user_id], [domain.EXTERNAL])
                wallet = accounts.wallet(user_id)
                balance = domain.credited(wallet.balance, amount)
                tx = ledger.new_transaction_id()
                await deposits.record_result(uow, key, tx, balance, held)
                await ledger.post(uow, tx, domain.DEPOSIT, reference, [
                    Leg(wallet.id, domain.DEPOSIT, amount),
                    Leg(accounts.system(domain.EXTERNAL).id, domain.DEPOSIT, -amount)])
                await uow.commit()
                return DepositResult(tx, Wallet(user_id, currency, balance, held), replayed=False)

        return await self._retrying(attempt)

    async def wallet(self, user_id: str, currency: str) -> Wallet:
        async with self.db.single_statement("read_wallet") as uow:
            balance, held = await ledger.wallet(uow, user_id, currency)
        return Wallet(user_id, currency, balance, held)

    async def ledger_page(self, user_id: str, currency: str, cursor: str, limit: int) -> tuple[list, str]:
        """A wallet's entries, newest first; keyset on the account version."""
        before = decode_cursor(cursor, int)
        async with self.db.single_statement("read_ledger") as uow:
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
                for _ in range(3):
                    tried = await holds.attempt(uow, terms, str(uuid.uuid4()), ledger.new_transaction_id())
                    # What is recorded for the decision or the target is final,
                    # so it is answered even when another hold holds the lock.
                    if domain.judge_hold(terms, tried.recorded, tried.existing) == domain.SAME_ESCROW:
                        return tried.existing
                    if tried.proceeded:
                        break
                    if not tried.locked:
                        # Another hold of this target is running: queue behind it
                        # and look again on a snapshot taken after it finished.
                        await holds.wait_for_target(uow, terms.target_id)
                    elif not tried.escrow_account_open:  # the currency's first hold
                        await ledger.open_system_account(uow, terms.currency, domain.ESCROW)
                    else:
                        raise RuntimeError(f"hold of target {terms.target_id} did not proceed under its lock")
                else:
                    raise RuntimeError(f"hold of target {terms.target_id} did not proceed in three looks")
                if tried.held is None:
                    balance = await ledger.wallet_balance(uow, terms.advertiser_id, terms.currency)
                    refusal = domain.insufficient_funds(balance, terms.amount)
                    await escrows.record_refusal(uow, terms, refusal.message)
                    await uow.commit()
                    raise refusal
                await uow.commit()
                return tried.held

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
                legs = [Leg(accounts.system(domain.ESCROW).id, domain.ESCROW_RELEASE, -escrow.amount)]
                if payout:
                    legs.append(Leg(accounts.wallet(escrow.publisher_id).id, domain.ESCROW_RELEASE, payout))
                if fee:
                    legs.append(Leg(accounts.system(domain.PLATFORM_FEE).id, domain.FEE, fee))
                tx = ledger.new_transaction_id()
                await ledger.post(uow, tx, domain.ESCROW_RELEASE, target_id, legs)
                closed = await escrows.close(uow, escrow, domain.RELEASED, fee, tx)
                _assert_closed(closed, escrow)
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
                tx = ledger.new_transaction_id()
                await ledger.post(uow, tx, domain.ESCROW_REFUND, target_id, [
                    Leg(accounts.wallet(escrow.advertiser_id).id, domain.ESCROW_REFUND, escrow.amount),
                    Leg(accounts.system(domain.ESCROW).id, domain.ESCROW_REFUND, -escrow.amount)])
                closed = await escrows.close(uow, escrow, domain.REFUNDED, None, tx)
                _assert_closed(closed, escrow)
                await uow.commit()
                return CloseResult(closed, moved=True)

        return await self._retrying(attempt)

    async def escrow(self, target_id: str) -> EscrowRow:
        async with self.db.single_statement("read_escrow") as uow:
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

    async def _retrying(self, attempt):
        """Serialization failures and deadlocks retry the whole unit; so
        does losing a race on a unique key, after which the retry finds and
        answers the winner's result."""
        for _ in range(3):
            try:
                return await self.db.retrying(attempt)
            except DatabaseError as error:
                if sqlstate(error) == NUMERIC_OUT_OF_RANGE:
                    raise InvalidInput("the amount would take a balance beyond the int64 range") from None
                if not is_unique_violation(error):
                    raise
        raise Conflict("a concurrent request for the same key won; try again")


def _assert_closed(closed: EscrowRow | None, escrow: EscrowRow) -> None:
    """The escrow row is locked, so the guarded close must match; if it did
    not, leaving without commit undoes the money just moved."""
    if closed is None:
        raise RuntimeError(f"escrow {escrow.id} was no longer held under its lock")
