"""Wallets, the ledger, deposits, escrows and withdrawals (payouts)."""
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query
from fastapi.responses import JSONResponse

from adtech.payments.v1 import payments_pb2 as pb
from gateway import views
from gateway.deps import Admin, CurrentUser, Page, PaymentsApi, Publisher
from gateway.inputs import (IDEMPOTENCY_KEY_MAX, VISIBLE_ASCII, Currency, Destination, ExternalReference, InputModel,
                            Money, Reference, Rejection, TargetId, UserId, WithdrawalId)

router = APIRouter(prefix="/api", tags=["payments"])


class NewDeposit(InputModel):
    amount: Money
    # Named so that another currency is refused (400 currency_not_supported),
    # not ignored and credited in the platform's.
    currency: Currency | None = None
    reference: Reference | None = None


class NewWithdrawal(InputModel):
    amount: Money
    currency: Currency | None = None
    destination: Destination


class Payout(InputModel):
    external_reference: ExternalReference


IdempotencyKey = Annotated[str, Header(
    alias="Idempotency-Key", min_length=1, max_length=IDEMPOTENCY_KEY_MAX, pattern=VISIBLE_ASCII,
    description="Makes the deposit happen once: the same key and body again answers 200 with the same transaction")]
WithdrawalKey = Annotated[str, Header(
    alias="Idempotency-Key", min_length=1, max_length=IDEMPOTENCY_KEY_MAX, pattern=VISIBLE_ASCII,
    description="Makes the withdrawal happen once: the same key and body again answers 200 with the same "
                "withdrawal")]
WithdrawalStatus = Annotated[Literal["", "pending", "paid", "rejected"],
                             Query(description="Only withdrawals of this status; all when empty")]


@router.post("/wallets/{userId}/deposits", status_code=201, response_model=views.Deposit,
             responses={200: {"model": views.Deposit, "description": "A replay of an earlier deposit"}})
async def deposit(user_id: UserId, body: NewDeposit, key: IdempotencyKey, user: Admin,
                  payments: PaymentsApi) -> JSONResponse:
    """An admin credits a user's wallet from outside funding, once per Idempotency-Key."""
    reply = await payments.Deposit(pb.DepositRequest(
        user_id=str(user_id), amount=body.amount, currency=body.currency or "", idempotency_key=key,
        reference=body.reference or ""))
    result = views.Deposit(transaction_id=reply.transaction_id, wallet=views.wallet(reply.wallet))
    return JSONResponse(result.model_dump(by_alias=True), status_code=200 if reply.replayed else 201)


@router.get("/wallet", response_model=views.Wallet)
async def own_wallet(user: CurrentUser, payments: PaymentsApi) -> views.Wallet:
    """The caller's wallet: `balance` is spendable, `held` is in escrow."""
    reply = await payments.GetWallet(pb.GetWalletRequest(user_id=user.id))
    return views.wallet(reply.wallet)


@router.get("/wallet/ledger", response_model=views.LedgerPage)
async def own_ledger(user: CurrentUser, payments: PaymentsApi, page: Page) -> views.LedgerPage:
    """The caller's ledger entries, newest first."""
    reply = await payments.ListLedger(pb.ListLedgerRequest(user_id=user.id, limit=page.limit, cursor=page.cursor))
    return views.LedgerPage(items=[views.ledger_entry(e) for e in reply.entries], next_cursor=views.next_cursor(reply))


@router.get("/wallets/{userId}", response_model=views.Wallet)
async def wallet(user_id: UserId, user: Admin, payments: PaymentsApi) -> views.Wallet:
    """Any user's wallet (admin)."""
    reply = await payments.GetWallet(pb.GetWalletRequest(user_id=str(user_id)))
    return views.wallet(reply.wallet)


@router.get("/escrows/{targetId}", response_model=views.Escrow)
async def escrow(target_id: TargetId, user: CurrentUser, payments: PaymentsApi) -> views.Escrow:
    """The escrow paying for a target (its advertiser, its publisher, or an admin)."""
    reply = await payments.GetEscrow(pb.GetEscrowRequest(target_id=str(target_id)))
    return views.escrow(reply.escrow)


@router.post("/wallet/withdrawals", status_code=201, response_model=views.Withdrawal,
             responses={200: {"model": views.Withdrawal, "description": "A replay of an earlier withdrawal"}})
async def request_withdrawal(body: NewWithdrawal, key: WithdrawalKey, user: Publisher,
                             payments: PaymentsApi) -> JSONResponse:
    """A publisher asks to withdraw from the own wallet, once per Idempotency-Key: the amount leaves the
    spendable balance at once and waits in `pendingPayout` until an admin pays or rejects it."""
    reply = await payments.RequestWithdrawal(pb.RequestWithdrawalRequest(
        amount=body.amount, currency=body.currency or "", destination=body.destination, idempotency_key=key))
    result = views.withdrawal(reply.withdrawal)
    return JSONResponse(result.model_dump(by_alias=True), status_code=200 if reply.replayed else 201)


@router.get("/wallet/withdrawals", response_model=views.WithdrawalPage)
async def own_withdrawals(user: CurrentUser, payments: PaymentsApi, page: Page) -> views.WithdrawalPage:
    """The caller's withdrawals, newest first."""
    reply = await payments.ListWithdrawals(pb.ListWithdrawalsRequest(
        user_id=user.id, limit=page.limit, cursor=page.cursor))
    return views.WithdrawalPage(items=[views.withdrawal(w) for w in reply.withdrawals],
                                next_cursor=views.next_cursor(reply))


@router.get("/withdrawals", response_model=views.WithdrawalPage)
async def withdrawals(user: Admin, payments: PaymentsApi, page: Page,
                      status: WithdrawalStatus = "") -> views.WithdrawalPage:
    """Every user's withdrawals, newest first, optionally of one status (admin)."""
    reply = await payments.ListWithdrawals(pb.ListWithdrawalsRequest(
        status=status, limit=page.limit, cursor=page.cursor))
    return views.WithdrawalPage(items=[views.withdrawal(w) for w in reply.withdrawals],
                                next_cursor=views.next_cursor(reply))


@router.post("/withdrawals/{withdrawalId}/complete", response_model=views.Withdrawal)
async def complete_withdrawal(withdrawal_id: WithdrawalId, body: Payout, user: Admin,
                              payments: PaymentsApi) -> views.Withdrawal:
    """An admin records a pending withdrawal as paid out, with the payment's external reference."""
    reply = await payments.CompleteWithdrawal(pb.CompleteWithdrawalRequest(
        withdrawal_id=str(withdrawal_id), external_reference=body.external_reference))
    return views.withdrawal(reply.withdrawal)


@router.post("/withdrawals/{withdrawalId}/reject", response_model=views.Withdrawal)
async def reject_withdrawal(withdrawal_id: WithdrawalId, body: Rejection, user: Admin,
                            payments: PaymentsApi) -> views.Withdrawal:
    """An admin rejects a pending withdrawal with a reason; the money goes back into the wallet."""
    reply = await payments.RejectWithdrawal(pb.RejectWithdrawalRequest(
        withdrawal_id=str(withdrawal_id), reason=body.reason))
    return views.withdrawal(reply.withdrawal)
