"""adtech.payments.v1.PaymentsService: proto in, one use case, proto out."""
from adtech.payments.v1 import payments_pb2 as pb
from adtech.payments.v1 import payments_pb2_grpc
from common.auth import parse_uuid, require_actor
from common.pagination import page_limit
from common.timestamps import to_timestamp
from services.payments import domain
from services.payments.store.escrows import EscrowRow
from services.payments.store.withdrawals import WithdrawalRow
from services.payments.usecases import Payments, Wallet


def _wallet(wallet: Wallet) -> pb.Wallet:
    return pb.Wallet(user_id=wallet.user_id, currency=wallet.currency, balance=wallet.balance, held=wallet.held,
                     pending_payout=wallet.pending_payout)


def _withdrawal(w: WithdrawalRow) -> pb.Withdrawal:
    return pb.Withdrawal(
        id=w.id, user_id=w.user_id, amount=w.amount, currency=w.currency, destination=w.destination,
        status=w.status, external_reference=w.external_reference or "", reason=w.reason or "",
        created_at=to_timestamp(w.created_at), updated_at=to_timestamp(w.updated_at))


def _escrow(escrow: EscrowRow) -> pb.Escrow:
    return pb.Escrow(
        id=escrow.id, target_id=escrow.target_id, advertiser_id=escrow.advertiser_id,
        publisher_id=escrow.publisher_id, amount=escrow.amount, currency=escrow.currency, status=escrow.status,
        created_at=to_timestamp(escrow.created_at), updated_at=to_timestamp(escrow.updated_at),
        decision_id=escrow.decision_id)


class PaymentsServicer(payments_pb2_grpc.PaymentsServiceServicer):
    def __init__(self, payments: Payments, currency: str = domain.DEFAULT_CURRENCY):
        self.payments = payments
        self.currency = currency  # the platform's one currency

    def _currency(self, request) -> str:
        return domain.currency_of(request.currency, self.currency)

    def _currency_to_read(self, request) -> str:
        return domain.currency_to_read(request.currency, self.currency)

    async def Deposit(self, request, context):
        require_actor().require(*domain.DEPOSITORS)
        result = await self.payments.deposit(
            parse_uuid(request.user_id, "user_id"), domain.positive_amount(request.amount),
            self._currency(request), domain.idempotency_key(request.idempotency_key),
            domain.reference(request.reference))
        return pb.DepositResponse(transaction_id=result.transaction_id, wallet=_wallet(result.wallet),
                                  replayed=result.replayed)

    async def GetWallet(self, request, context):
        user_id, actor = parse_uuid(request.user_id, "user_id"), require_actor()
        domain.assert_may_read_wallet(actor, user_id)
        wallet = await self.payments.wallet(user_id, self._currency_to_read(request), by_owner=actor.id == user_id)
        return pb.GetWalletResponse(wallet=_wallet(wallet))

    async def ListLedger(self, request, context):
        user_id = parse_uuid(request.user_id, "user_id")
        domain.assert_may_read_wallet(require_actor(), user_id)
        rows, cursor = await self.payments.ledger_page(
            user_id, self._currency_to_read(request), request.cursor, page_limit(request.limit))
        return pb.ListLedgerResponse(next_cursor=cursor, entries=[pb.LedgerEntry(
            id=r.id, transaction_id=r.transaction_id, kind=r.kind, amount=r.amount, balance_after=r.balance_after,
            reference=r.reference, created_at=to_timestamp(r.created_at)) for r in rows])

    async def HoldEscrow(self, request, context):
        require_actor().require(*domain.ESCROW_OPERATORS)
        escrow = await self.payments.hold_escrow(domain.HoldTerms(
            target_id=parse_uuid(request.target_id, "target_id"),
            decision_id=parse_uuid(request.decision_id, "decision_id"),
            advertiser_id=parse_uuid(request.advertiser_id, "advertiser_id"),
            publisher_id=parse_uuid(request.publisher_id, "publisher_id"),
            amount=domain.positive_amount(request.amount), currency=self._currency(request)))
        return pb.HoldEscrowResponse(escrow=_escrow(escrow))

    async def ReleaseEscrow(self, request, context):
        require_actor().require(*domain.ESCROW_OPERATORS)
        escrow = await self.payments.release_escrow(parse_uuid(request.target_id, "target_id"))
        return pb.ReleaseEscrowResponse(escrow=_escrow(escrow), fee=escrow.fee or 0)

    async def RefundEscrow(self, request, context):
        require_actor().require(*domain.ESCROW_OPERATORS)
        result = await self.payments.refund_escrow(parse_uuid(request.target_id, "target_id"))
        if result.escrow is None:
            return pb.RefundEscrowResponse(refunded=False)
        return pb.RefundEscrowResponse(escrow=_escrow(result.escrow), refunded=result.moved)

    async def GetEscrow(self, request, context):
        actor = require_actor()
        escrow = await self.payments.escrow(parse_uuid(request.target_id, "target_id"))
        domain.assert_may_read_escrow(actor, escrow.advertiser_id, escrow.publisher_id)
        return pb.GetEscrowResponse(escrow=_escrow(escrow))

    async def ListEscrows(self, request, context):
        require_actor().require(*domain.AUDITORS)
        rows, cursor = await self.payments.escrows_page(request.cursor, page_limit(request.limit))
        return pb.ListEscrowsResponse(escrows=[_escrow(r) for r in rows], next_cursor=cursor)

    async def Reconcile(self, request, context):
        require_actor().require(*domain.AUDITORS)
        results = await self.payments.reconcile()
        return pb.ReconcileResponse(ok=all(r.ok for r in results), checks=[pb.ReconcileCheck(
            name=r.name, ok=r.ok, violations=r.violations, detail=r.detail) for r in results])

    async def RequestWithdrawal(self, request, context):
        actor = require_actor()
        actor.require(*domain.WITHDRAWERS)
        terms = domain.WithdrawalTerms(
            user_id=actor.id, amount=domain.positive_amount(request.amount),
            currency=self._currency(request),
            destination=domain.text(request.destination, "destination", domain.MAX_DESTINATION))
        result = await self.payments.request_withdrawal(terms, domain.idempotency_key(request.idempotency_key))
        return pb.RequestWithdrawalResponse(withdrawal=_withdrawal(result.withdrawal), replayed=result.replayed)

    async def ListWithdrawals(self, request, context):
        user_id = parse_uuid(request.user_id, "user_id") if request.user_id else ""
        domain.assert_may_list_withdrawals(require_actor(), user_id)
        rows, cursor = await self.payments.withdrawals_page(
            user_id or None, domain.withdrawal_status(request.status) or None, request.cursor,
            page_limit(request.limit))
        return pb.ListWithdrawalsResponse(withdrawals=[_withdrawal(r) for r in rows], next_cursor=cursor)

    async def CompleteWithdrawal(self, request, context):
        require_actor().require(*domain.PAYOUT_OPERATORS)
        withdrawal = await self.payments.complete_withdrawal(
            parse_uuid(request.withdrawal_id, "withdrawal_id"),
            domain.text(request.external_reference, "external_reference", domain.MAX_EXTERNAL_REFERENCE))
        return pb.CompleteWithdrawalResponse(withdrawal=_withdrawal(withdrawal))

    async def RejectWithdrawal(self, request, context):
        require_actor().require(*domain.PAYOUT_OPERATORS)
        withdrawal = await self.payments.reject_withdrawal(
            parse_uuid(request.withdrawal_id, "withdrawal_id"),
            domain.text(request.reason, "reason", domain.MAX_REJECTION_REASON))
        return pb.RejectWithdrawalResponse(withdrawal=_withdrawal(withdrawal))
