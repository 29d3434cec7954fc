"""Wallets, the ledger, deposits and escrows."""
from typing import Annotated

from fastapi import APIRouter, Header
from fastapi.responses import JSONResponse

from adtech.payments.v1 import payments_pb2 as pb
from gateway import views
from gateway.deps import Admin, CurrentUser, Page, PaymentsApi
from gateway.inputs import IDEMPOTENCY_KEY_MAX, VISIBLE_ASCII, InputModel, Money, Reference, TargetId, UserId

router = APIRouter(prefix="/api", tags=["payments"])


class NewDeposit(InputModel):
    amount: Money
    reference: Reference | None = None


IdempotencyKey = Annotated[str, Header(
    alias="Idempotency-Key", min_length=1, max_length=IDEMPOTENCY_KEY_MAX, pattern=VISIBLE_ASCII,
    description="Makes the deposit happen once: the same key and body again answers 200 with the same transaction")]


@router.post("/wallets/{userId}/deposits", status_code=201, response_model=views.Deposit,
             responses={200: {"model": views.Deposit, "description": "A replay of an earlier deposit"}})
async def deposit(user_id: UserId, body: NewDeposit, key: IdempotencyKey, user: Admin,
                  payments: PaymentsApi) -> JSONResponse:
    """An admin credits a user's wallet from outside funding, once per Idempotency-Key."""
    reply = await payments.Deposit(pb.DepositRequest(
        user_id=str(user_id), amount=body.amount, idempotency_key=key, reference=body.reference or ""))
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
