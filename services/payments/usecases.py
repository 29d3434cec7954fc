"""Payments' business acts, one unit of work each, named for the act."""
import dataclasses
import datetime as dt
import uuid

from common.batching import Batcher, Turns
from common.db import Database, ValueOutOfRange
from common.errors import InvalidInput
from common.pagination import decode_cursor, encode_cursor
from services.payments import domain
from services.payments.store import deposits, escrows, holds, ledger, reconcile as checks, settlements, withdrawals
from services.payments.store.escrows import EscrowRow
from services.payments.store.ledger import Leg
from services.payments.store.withdrawals import WithdrawalRow

# How often a use case runs again after losing a race (see _retrying); one
# more run answers the winner's result, the rest is margin.
RETRIES = 5


@dataclasses.dataclass(frozen=True)
class Wallet:
    user_id: str
    currency: str
    balance: int
    held: int
    pending_payout: int = 0


@dataclasses.dataclass(frozen=True)
class DepositResult:
    transaction_id: str
    wallet: Wallet
    replayed: bool


@dataclasses.dataclass(frozen=True)
class WithdrawalResult:
    withdrawal: WithdrawalRow
    replayed: bool


@dataclasses.dataclass(frozen=True)
class CloseResult:
    escrow: EscrowRow | None
    moved: bool


class Payments:
    def __init__(self, db: Database, fee_bps: int, *, hold_batch_size: int = 32, hold_batches: int = 4):
        self.db = db
        self.fee_bps = fee_bps
        # Holds asked for at the same time share a statement: at most
        # `hold_batch_size` in one, at most `hold_batches` statements at once;
        # never two of one target, decision or wallet in one statement.
        self.hold_batches: Batcher[domain.HoldTerms, holds.HoldAttempt] = Batcher(
            self._hold_together, max_size=hold_batch_size, max_running=hold_batches, keys_of=holds.keys_of)
        # Holds whose wallet another move held wait for it, each in a session
        # of its own: at most one per wallet, and at most half the sessions
        # the batches leave, so deposits, releases and other wallets' holds
        # always find one.
        self._waits_for_wallets = Turns(max(1, (db.pool_size - hold_batches) // 2))

    async def deposit(self, user_id: str, amount: int, currency: str, key: str, reference: str) -> DepositResult:
        """Credits a wallet from external funding once per idempotency key;
        a repeat with the same body answers the first result."""
        fingerprint = domain.deposit_fingerprint(user_id, amount, currency, reference)

        async def attempt() -> DepositResult:
            async with self.db.unit_of_work("deposit") as uow:
                claimed, held, pending = await deposits.claim(uow, key, fingerprint, user_id, currency)
                if not claimed:
                    first = await deposits.stored(uow, key)
                    if first.fingerprint != fingerprint:
                        raise domain.IdempotencyKeyReused("idempotency key was used with a different deposit")
                    return DepositResult(first.transaction_id, Wallet(
                        first.user_id, first.currency, first.balance_after, first.held_after,
                        first.pending_payout_after), replayed=True)
                if not await ledger.has_wallet(uow, user_id):
                    raise domain.WalletNotFound(
                        f"user {user_id} has no wallet; a wallet opens when its owner first reads it (GET /api/wallet)")
                tx = ledger.new_transaction_id()
                accounts = await ledger.lock_accounts(uow, currency, [user_id], [domain.EXTERNAL],
                                                      domain.ledger_shard(tx))
                wallet = accounts.wallet(user_id)
                balance = domain.credited(wallet.balance, amount)
                await deposits.record_result(uow, key, tx, balance, held, pending)
                await ledger.post(uow, tx, domain.DEPOSIT, reference, [
                    Leg(wallet.id, domain.DEPOSIT, amount),
                    Leg(accounts.system(domain.EXTERNAL).id, domain.DEPOSIT, -amount)])
                await uow.commit()
                return DepositResult(tx, Wallet(user_id, currency, balance, held, pending), replayed=False)

        return await self._retrying(attempt)

    async def wallet(self, user_id: str, currency: str, *, by_owner: bool) -> Wallet:
        """The wallet's figures; its owner's read opens it (deposits may then
        reach it), anyone else's only reads."""
        if by_owner:
            async with self.db.single_statement("open_wallet") as uow:
                await ledger.open_wallet(uow, user_id, currency)
        async with self.db.single_statement("read_wallet") as uow:
            balance, held, pending = await ledger.wallet(uow, user_id, currency)
        return Wallet(user_id, currency, balance, held, pending)

    async def ledger_page(self, user_id: str, currency: str, cursor: str, limit: int) -> tuple[list, str]:
        """A wallet's entries, newest first; keyset on the account version."""
        before = decode_cursor(cursor, int)
        async with self.db.single_statement("read_ledger") as uow:
            rows = await ledger.ledger_page(uow, user_id, currency, before[0] if before else None, limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        return rows, encode_cursor(rows[-1].account_version) if more else ""

    async def hold_escrow(self, terms: domain.HoldTerms) -> EscrowRow:
        """Moves the price from the advertiser's spendable balance into the
        escrow's own account, once per target; the outcome is recorded for
        the decision and a repeat answers it (docs/design.md saga rules 3 and 7).

        The hold is one statement, which PostgreSQL runs as its own
        transaction (store/holds.py), shared with the holds asked for
        meanwhile (`hold_batches`): one statement and one commit for a
        burst of holds. That statement waits for no lock: a hold whose
        wallet another move holds runs again alone, waiting for the wallet;
        one whose target another hold of it holds takes a second, short
        transaction of its own: wait for that lock, then run the statement
        again under it, which then decides for certain."""
        async def attempt() -> EscrowRow:
            tried = await self.hold_batches.submit(terms)
            if tried.busy:
                # A session waiting for a wallet is one no other move can use:
                # one at a time per wallet, and a few in all.
                async with self._waits_for_wallets.turn((terms.advertiser_id, terms.currency)):
                    async with self.db.single_statement("hold_escrow_when_wallet_free") as uow:
                        [tried] = await holds.attempt(uow, [terms], wait_for_wallet=True)
            if not tried.locked and tried.recorded is None and tried.escrow is None:
                async with self.db.unit_of_work("hold_escrow_after_wait") as uow:
                    await holds.wait_for_target(uow, terms.target_id)
                    [tried] = await holds.attempt(uow, [terms], wait_for_wallet=True)
                    await uow.commit()
            # What is recorded for the decision or the target is final, so it
            # is answered even when another hold held the lock.
            if domain.judge_hold(terms, tried.recorded, tried.escrow) == domain.SAME_ESCROW:
                return tried.escrow
            raise RuntimeError(f"hold of target {terms.target_id} decided nothing under its lock")

        return await self._retrying(attempt)

    async def _hold_together(self, asked: list[domain.HoldTerms]) -> list[holds.HoldAttempt | BaseException]:
        """One run of the hold statement for a batch. When the statement
        refuses a value, each hold runs on its own, so the error reaches
        only the caller that sent that value; any other failure (a lost
        race, a lost connection) reaches every caller of the batch, whose
        retry, or the saga's, runs the hold again and is answered from the
        record."""
        try:
            async with self.db.single_statement("hold_escrows") as uow:
                return await holds.attempt(uow, asked)
        except ValueOutOfRange:
            if len(asked) == 1:
                raise
        outcomes: list[holds.HoldAttempt | BaseException] = []
        for terms in asked:
            try:
                outcomes.extend(await self._hold_together([terms]))
            except ValueOutOfRange as error:  # this hold's own value, for its caller alone
                outcomes.append(error)
        return outcomes

    async def release_escrow(self, target_id: str) -> EscrowRow:
        """Pays a held escrow to the publisher less the platform fee; a
        repeat answers the same release without paying twice.

        Two statements, each its own transaction: the read decides nothing
        (an escrow's terms never change) and the close is guarded on the
        escrow still being held; when another close won in between, it
        moves nothing and a second read answers with the winner's result."""
        async def attempt() -> EscrowRow:
            async with self.db.single_statement("release_escrow") as uow:
                escrow = await escrows.by_target(uow, target_id)
                if escrow is not None and escrow.status == domain.HELD:
                    payout, fee = domain.release_split(escrow.amount, self.fee_bps)
                    closed = await settlements.release(uow, escrow, payout, fee, ledger.new_transaction_id())
                    escrow = closed or await escrows.by_target(uow, target_id)
            if domain.judge_close(target_id, escrow and escrow.status, domain.RELEASED) == domain.SAME_ESCROW:
                return escrow
            raise RuntimeError(f"escrow of target {target_id} is still held after its release")

        return await self._retrying(attempt)

    async def refund_escrow(self, target_id: str) -> CloseResult:
        """Returns a held escrow to the advertiser. A repeat, a second
        sender, or a target that never had an escrow succeeds without moving
        money (docs/design.md saga rule 6); a released escrow is refused. Two
        statements, as for a release."""
        async def attempt() -> CloseResult:
            closed = None
            async with self.db.single_statement("refund_escrow") as uow:
                escrow = await escrows.by_target(uow, target_id)
                if escrow is not None and escrow.status == domain.HELD:
                    closed = await settlements.refund(uow, escrow, ledger.new_transaction_id())
                    escrow = closed or await escrows.by_target(uow, target_id)
            if escrow is None:
                return CloseResult(None, moved=False)
            if domain.judge_close(target_id, escrow.status, domain.REFUNDED) == domain.SAME_ESCROW:
                return CloseResult(escrow, moved=closed is not None)
            raise RuntimeError(f"escrow of target {target_id} is still held after its refund")

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

    async def request_withdrawal(self, terms: domain.WithdrawalTerms, key: str) -> WithdrawalResult:
        """Moves the amount from the user's spendable balance into the
        user's pending-payouts account, once per (user, idempotency key), in
        one ledger transaction; a repeat with the same request answers the
        first withdrawal. A request the balance cannot cover moves and
        keeps nothing (the key stays free)."""
        async def attempt() -> WithdrawalResult:
            async with self.db.unit_of_work("request_withdrawal") as uow:
                tx = ledger.new_transaction_id()
                claimed = await withdrawals.claim(uow, str(uuid.uuid4()), key, terms, tx)
                if claimed is None:
                    first = await withdrawals.by_key(uow, terms.user_id, key)
                    domain.judge_withdrawal_replay(terms, first.terms)
                    return WithdrawalResult(first, replayed=True)
                wallet = await withdrawals.debit_wallet(uow, terms.user_id, terms.currency, terms.amount)
                if wallet is None:
                    balance = await withdrawals.balance(uow, terms.user_id, terms.currency)
                    raise domain.InsufficientFunds(domain.INSUFFICIENT_FUNDS % (balance, terms.amount))
                pending = await withdrawals.credit_pending(uow, terms.user_id, terms.currency, terms.amount)
                await ledger.post(uow, tx, domain.WITHDRAWAL, claimed.id, [
                    Leg(wallet.id, domain.WITHDRAWAL, -terms.amount, wallet.state),
                    Leg(pending.id, domain.WITHDRAWAL, terms.amount, pending.state)])
                await uow.commit()
                return WithdrawalResult(claimed, replayed=False)

        return await self._retrying(attempt)

    async def complete_withdrawal(self, withdrawal_id: str, external_reference: str) -> WithdrawalRow:
        """pending → paid: the money leaves the user's pending-payouts
        account for external funding (one shard, chosen from the
        withdrawal), in one ledger transaction. Only once: a withdrawal
        paid or rejected already is refused."""
        async def attempt() -> WithdrawalRow:
            async with self.db.unit_of_work("complete_withdrawal") as uow:
                tx = ledger.new_transaction_id()
                closed = await withdrawals.close(uow, withdrawal_id, domain.PAID, tx,
                                                 external_reference=external_reference)
                if closed is None:
                    found = await withdrawals.by_id(uow, withdrawal_id)
                    domain.judge_withdrawal_close(withdrawal_id, found and found.status)
                pending = await withdrawals.debit_pending(uow, closed.user_id, closed.currency, closed.amount)
                external = await withdrawals.credit_external(uow, closed.currency, domain.ledger_shard(closed.id),
                                                             closed.amount)
                await ledger.post(uow, tx, domain.PAYOUT, closed.id, [
                    Leg(pending.id, domain.PAYOUT, -closed.amount, pending.state),
                    Leg(external.id, domain.PAYOUT, closed.amount, external.state)])
                await uow.commit()
                return closed

        return await self._retrying(attempt)

    async def reject_withdrawal(self, withdrawal_id: str, reason: str) -> WithdrawalRow:
        """pending → rejected: the money goes back from the user's
        pending-payouts account into the wallet (a positive 'withdrawal'
        entry), in one ledger transaction. Only once, as for a completion."""
        async def attempt() -> WithdrawalRow:
            async with self.db.unit_of_work("reject_withdrawal") as uow:
                tx = ledger.new_transaction_id()
                closed = await withdrawals.close(uow, withdrawal_id, domain.REJECTED, tx, reason=reason)
                if closed is None:
                    found = await withdrawals.by_id(uow, withdrawal_id)
                    domain.judge_withdrawal_close(withdrawal_id, found and found.status)
                wallet = await withdrawals.credit_wallet(uow, closed.user_id, closed.currency, closed.amount)
                pending = await withdrawals.debit_pending(uow, closed.user_id, closed.currency, closed.amount)
                await ledger.post(uow, tx, domain.WITHDRAWAL_REVERSAL, closed.id, [
                    Leg(wallet.id, domain.WITHDRAWAL, closed.amount, wallet.state),
                    Leg(pending.id, domain.WITHDRAWAL, -closed.amount, pending.state)])
                await uow.commit()
                return closed

        return await self._retrying(attempt)

    async def withdrawals_page(self, user_id: str | None, status: str | None, cursor: str,
                               limit: int) -> tuple[list[WithdrawalRow], str]:
        """Withdrawals newest first, of one user or all, of one status or any."""
        after = decode_cursor(cursor, dt.datetime, uuid.UUID)
        async with self.db.single_statement("list_withdrawals") as uow:
            rows = await withdrawals.page(uow, user_id, status, after, limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        return rows, encode_cursor(rows[-1].created_at, rows[-1].id) if more else ""

    async def reconcile(self) -> list[checks.CheckResult]:
        """Every ledger invariant, checked on one consistent snapshot."""
        async with self.db.unit_of_work("reconcile_ledger") as uow:
            await checks.snapshot(uow)
            return await checks.run(uow)

    async def _retrying(self, attempt):
        """A use case run by the database's one retry loop (a lost race on a
        unique key is retried too: the repeat answers the winner's result);
        an amount beyond int64 is the caller's error."""
        try:
            return await self.db.retrying(attempt, attempts=RETRIES, unique_violation=True)
        except ValueOutOfRange:
            raise InvalidInput("the amount would take a balance beyond the int64 range") from None