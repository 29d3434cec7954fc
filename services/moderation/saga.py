"""Every decision's saga: the approve saga and the one-step reject. One outbox message per step,
each carrying the decision id. A step calls its peer, then ONE statement
moves the decision (guarded by its current status), marks the message
delivered and writes the next message, born claimed so it is sent at once.

Peers answer repeats of a step from their record of it (docs/design.md, saga step
rules), and our moves are guarded, so a redelivered message finds nothing to
move and changes nothing. Anything but a business refusal is raised to the
relay, which repeats the step with backoff; a business refusal runs the
compensation its state owes and ends the saga `failed`.

Which commits wait for the disk: the start of a decision does (a peer may
act on it at once, and nothing would ever finish what a lost start began),
and so does the move to escrow_held (see hold_escrow); the other moves do
not (`durable=False`). Losing one in a crash loses no outcome: the message
it completed is still pending, the relay delivers it again, and the peer,
whose own commit was durable, answers from its record. (A durable commit
also makes every earlier one of the same database durable: the WAL is one
sequence.)"""
import asyncio
import logging

import grpc

from adtech.campaigns.v1 import campaigns_pb2, campaigns_pb2_grpc
from adtech.payments.v1 import payments_pb2, payments_pb2_grpc
from common import outbox
from common.auth import SYSTEM, acting_as
from common.db import Database
from common.grpc_errors import is_definite_refusal, reason_of
from services.moderation import domain, store
from services.moderation.domain import Decision

log = logging.getLogger(__name__)


# How often a waiter that joined a running saga reads it again.
JOINED_RECHECK_S = 0.25


class Refused(Exception):
    """A peer's definite answer: the saga cannot go forward."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message


async def call(method, request):
    """A peer call as the system actor; a business refusal becomes Refused,
    anything else propagates for the relay to repeat the step."""
    try:
        with acting_as(SYSTEM):
            return await method(request)
    except grpc.aio.AioRpcError as error:
        reason = reason_of(error)
        if is_definite_refusal(error.code()) or reason in domain.RECORDED_CONFLICTS:
            raise Refused(reason or error.code().name.lower(), error.details() or "") from None
        raise


class DecisionSagas:
    """The steps of approve and reject decisions, the approve's
    compensations, the relay that delivers the steps, and in-process
    waiters for a decision's end."""

    def __init__(self, db: Database, campaigns: campaigns_pb2_grpc.CampaignsServiceStub,
                 payments: payments_pb2_grpc.PaymentsServiceStub, policy: outbox.RelayPolicy):
        self.db = db
        self.campaigns = campaigns
        self.payments = payments
        self._waiters: dict[str, list[asyncio.Future]] = {}
        self._reads: set[asyncio.Task] = set()
        self.relay = outbox.Relay(db, self.handlers(), policy)
        self.relay.listen(domain.SETTLED_CHANNEL, self._ended_somewhere)

    def handlers(self) -> dict[str, outbox.Handler]:
        return {domain.RESERVE: self.reserve_target, domain.HOLD: self.hold_escrow,
                domain.CONFIRM: self.approve_target, domain.RELEASE: self.release_target,
                domain.REFUND: self.refund_escrow, domain.REJECT: self.reject_target}

    async def start_reject(self, uow, target_id: str, moderator_id: str, reason: str):
        """Writes a pending reject decision and its step in the caller's
        transaction; the caller dispatches the step after commit."""
        return await store.start_reject(uow, target_id, moderator_id, reason, domain.REJECT, self.relay.claim)

    async def start_approve(self, uow, target_id: str, moderator_id: str) -> tuple[Decision, outbox.Message] | None:
        """Writes the decision and its first step in the caller's
        transaction; the caller dispatches the step after commit. None when
        another approve of the target is live."""
        return await store.start_approve(uow, target_id, moderator_id, domain.RESERVE, self.relay.claim)

    def dispatch(self, message: outbox.Message) -> None:
        self.relay.dispatch(message)

    # -- waiting for the end, in this process -------------------------------

    async def wait_settled(self, decision_id: str, timeout_s: float, recheck=None) -> Decision | None:
        """The decision once it ends, or None after the timeout (it may still
        be running). `recheck` (given by a caller that joined a running saga)
        reads the decision once the waiter is registered and then every
        JOINED_RECHECK_S: the saga may be running on another replica, which
        does not announce the end when a waiter of its own was answered."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._waiters.setdefault(decision_id, []).append(future)
        deadline = loop.time() + timeout_s
        try:
            while True:
                if recheck is not None:
                    fresh = await recheck()
                    if fresh is not None and fresh.settled:
                        return fresh
                left = deadline - loop.time()
                if left <= 0:
                    return None
                try:
                    return await asyncio.wait_for(asyncio.shield(future),
                                                  min(left, JOINED_RECHECK_S) if recheck is not None else left)
                except asyncio.TimeoutError:
                    if recheck is None:
                        return None
        finally:
            waiters = self._waiters.get(decision_id, [])
            if future in waiters:
                waiters.remove(future)
            if not waiters:
                self._waiters.pop(decision_id, None)

    def _announces(self, decision_id: str) -> bool:
        """Whether the end of a decision is announced to the other replicas:
        not when an approve here waits for it (the usual case: the process
        that starts a saga runs it), which is answered in-process."""
        return decision_id not in self._waiters

    def _ended_somewhere(self, decision_id: str) -> None:
        """A decision ended, perhaps on another replica: its waiters here
        (none when it ended here: they were answered already) read it."""
        if decision_id in self._waiters:
            task = asyncio.ensure_future(self._answer_waiters_from_database(decision_id))
            self._reads.add(task)
            task.add_done_callback(self._reads.discard)

    async def _answer_waiters_from_database(self, decision_id: str) -> None:
        try:
            async with self.db.single_statement("read_ended_decision") as uow:
                decision = await store.get_decision(uow, decision_id)
        except Exception:
            log.warning("reading decision %s that ended elsewhere failed; its waiters time out", decision_id,
                        exc_info=True)
            return
        if decision is not None and decision.settled:
            self._settled(decision)

    def _settled(self, decision: Decision) -> None:
        for future in self._waiters.pop(decision.id, []):
            if not future.done():
                future.set_result(decision)

    # -- the steps ------------------------------------------------------------
    # Each message carries what its step needs, so a step reads nothing
    # before calling its peer.

    async def _advance(self, message: outbox.Message, current: str, wanted: str,
                       next_topic: str | None = None, next_payload: dict | None = None, *,
                       durable: bool = False, **fields) -> None:
        """Moves the decision, completes the message and chains the next step, in one statement."""
        decision_id = message.payload["decision_id"]
        follow = (next_topic, message.aggregate_id, {"decision_id": decision_id, **(next_payload or {})}) \
            if next_topic else None
        async with self.db.single_statement(f"saga_{current}_to_{wanted}", durable=durable) as uow:
            moved, chained = await store.advance(uow, decision_id, current, wanted, done=message.id, follow=follow,
                                                 announce=self._announces(decision_id),
                                                 claim=self.relay.claim, **fields)
        self._after_commit(moved, chained)

    async def _compensate(self, message: outbox.Message, current: str, refusal: Refused, compensation: str,
                          wanted: str | None = None) -> None:
        """Records why the saga fails and writes its compensation, in one
        statement. With `wanted` the decision moves there; without, it keeps
        its status (the target stays locked) until the compensation has run."""
        decision_id = message.payload["decision_id"]
        follow = (compensation, message.aggregate_id, {"decision_id": decision_id})
        claim = self.relay.claim
        async with self.db.single_statement("start_saga_compensation", durable=False) as uow:
            if wanted is not None:
                moved, chained = await store.advance(uow, decision_id, current, wanted, done=message.id, follow=follow,
                                                 announce=self._announces(decision_id),
                                                     claim=claim, reason=refusal.code, reason_message=refusal.message)
            else:
                moved, chained = await store.note_failure(uow, decision_id, current, refusal.code, refusal.message,
                                                          done=message.id, follow=follow, claim=claim)
        self._after_commit(moved, chained)

    def _after_commit(self, moved: Decision | None, chained: outbox.Message | None) -> None:
        if chained is not None:
            self.dispatch(chained)
        if moved is not None and moved.settled:
            self._settled(moved)

    async def reserve_target(self, message: outbox.Message) -> bool:
        """Campaigns locks the target (submitted → approving) for this decision."""
        step = message.payload
        try:
            reply = await call(self.campaigns.ReserveTarget, campaigns_pb2.ReserveTargetRequest(
                target_id=message.aggregate_id, decision_id=step["decision_id"]))
        except Refused as refusal:
            await self._advance(message, "pending", "failed", reason=refusal.code, reason_message=refusal.message)
            return True
        snap = reply.snapshot
        terms = {"advertiser_id": snap.advertiser_id, "publisher_id": snap.publisher_id,
                 "amount": snap.target.price, "currency": snap.target.currency}
        await self._advance(message, "pending", "reserved", domain.HOLD,
                            {**terms, "moderator_id": step["moderator_id"]}, **terms)
        return True

    async def hold_escrow(self, message: outbox.Message) -> bool:
        """Payments holds the price, keyed on the target id."""
        step = message.payload
        try:
            reply = await call(self.payments.HoldEscrow, payments_pb2.HoldEscrowRequest(
                target_id=message.aggregate_id, decision_id=step["decision_id"],
                advertiser_id=step["advertiser_id"], publisher_id=step["publisher_id"],
                amount=step["amount"], currency=step["currency"]))
        except Refused as refusal:
            await self._compensate(message, "reserved", refusal, domain.RELEASE)
            return True
        # Durable, unlike the other moves: once the escrow is held, a crash must
        # never take the decision back before it. A repeated HoldEscrow is
        # refused once the escrow has closed (rule 7), which would fail a
        # decision that campaigns has approved; ApproveTarget, repeated from
        # here on, answers from its record whatever happened since (rule 5).
        await self._advance(message, "reserved", "escrow_held", domain.CONFIRM,
                            {"moderator_id": step["moderator_id"], "escrow_id": reply.escrow.id},
                            durable=True, escrow_id=reply.escrow.id)
        return True

    async def approve_target(self, message: outbox.Message) -> bool:
        """Campaigns approves the target and creates its one post job."""
        step = message.payload
        try:
            reply = await call(self.campaigns.ApproveTarget, campaigns_pb2.ApproveTargetRequest(
                target_id=message.aggregate_id, decision_id=step["decision_id"],
                moderator_id=step["moderator_id"], escrow_id=step["escrow_id"]))
        except Refused as refusal:
            await self._compensate(message, "escrow_held", refusal, domain.REFUND, wanted="compensating")
            return True
        await self._advance(message, "escrow_held", "approved", post_job_id=reply.post_job.id)
        return True

    async def release_target(self, message: outbox.Message) -> bool:
        """Compensation after a refused hold: the target is submitted again."""
        await call(self.campaigns.ReleaseTarget, campaigns_pb2.ReleaseTargetRequest(
            target_id=message.aggregate_id, decision_id=message.payload["decision_id"]))
        await self._advance(message, "reserved", "failed")
        return True

    async def refund_escrow(self, message: outbox.Message) -> bool:
        """Compensation after a refused approval: the advertiser gets the
        money back, and the target is released if this decision still holds
        it (rule 4: a no-op when a cancellation won, as it usually has)."""
        await call(self.payments.RefundEscrow, payments_pb2.RefundEscrowRequest(target_id=message.aggregate_id))
        await call(self.campaigns.ReleaseTarget, campaigns_pb2.ReleaseTargetRequest(
            target_id=message.aggregate_id, decision_id=message.payload["decision_id"]))
        await self._advance(message, "compensating", "failed")
        return True

    async def reject_target(self, message: outbox.Message) -> bool:
        """A reject decision's one step: campaigns rejects the target for it
        (recorded per decision, so a repeat gets the same answer)."""
        step = message.payload
        try:
            await call(self.campaigns.RejectTarget, campaigns_pb2.RejectTargetRequest(
                target_id=message.aggregate_id, moderator_id=step["moderator_id"], reason=step["reason"],
                decision_id=step["decision_id"]))
        except Refused as refusal:
            await self._advance(message, "pending", "failed", reason=refusal.code, reason_message=refusal.message)
            return True
        await self._advance(message, "pending", "rejected")
        return True
