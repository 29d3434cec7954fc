"""gRPC servicer of moderation: translate, call the use case, translate back."""
import grpc

from adtech.campaigns.v1 import campaigns_pb2, campaigns_pb2_grpc
from adtech.moderation.v1 import moderation_pb2, moderation_pb2_grpc
from common.auth import parse_uuid, require_actor
from common.db import Database
from common.errors import Conflict, InvalidInput, NotFound
from common.grpc_errors import to_domain_error
from common.pagination import page_limit
from services.moderation import domain, store
from services.moderation.domain import Decision
from services.moderation.saga import ApproveSaga

MAX_WAIT_MS = 30_000
MAX_REASON = 1000


async def ask(method, request):
    """A peer call on behalf of the current actor; its refusals pass through
    to our caller unchanged."""
    try:
        return await method(request)
    except grpc.aio.AioRpcError as error:
        translated = to_domain_error(error)
        if translated is None:
            raise
        raise translated from None


def decision_message(d: Decision) -> moderation_pb2.Decision:
    return moderation_pb2.Decision(
        decision_id=d.id, target_id=d.target_id, decision=d.kind, status=d.status, reason=d.reason or "",
        post_job_id=d.post_job_id or "", escrow_id=d.escrow_id or "", moderator_id=d.moderator_id,
        reason_message=d.reason_message or "")


class ModerationServicer(moderation_pb2_grpc.ModerationServiceServicer):
    def __init__(self, db: Database, campaigns: campaigns_pb2_grpc.CampaignsServiceStub, saga: ApproveSaga):
        self.db = db
        self.campaigns = campaigns
        self.saga = saga

    async def Approve(self, request, context):
        actor = require_actor()
        domain.require_moderator(actor.role)
        target_id = parse_uuid(request.target_id, "target_id")
        if not 0 <= request.wait_ms <= MAX_WAIT_MS:
            raise InvalidInput(f"wait_ms must be between 0 and {MAX_WAIT_MS}")
        decision, already, joined = await self.begin_approve(target_id, actor.id)
        if not decision.settled and request.wait_ms:
            ended = await self.saga.wait_settled(decision.id, request.wait_ms / 1000,
                                                 recheck=(lambda: self._read(decision.id)) if joined else None)
            decision = ended or await self._read(decision.id)
        return moderation_pb2.ApproveResponse(decision=decision_message(decision), already_approved=already,
                                              settled=decision.settled)

    async def _read(self, decision_id: str) -> Decision:
        async with self.db.single_statement("read_decision") as uow:
            return await store.get_decision(uow, decision_id)

    async def begin_approve(self, target_id: str, moderator_id: str) -> tuple[Decision, bool, bool]:
        """Starts an approve saga, or joins the approve that counts for the
        target: the decision and its first step commit together, then the
        step is sent at once. Returns (decision, already_approved, joined).

        The snapshot comes first: a target that may be approved has no
        successful approve yet, and a live one is found by the insert."""
        reply = await ask(self.campaigns.GetTargetSnapshot, campaigns_pb2.GetTargetSnapshotRequest(target_id=target_id))
        refusal = domain.refusal_from_snapshot(reply.snapshot.approve_refusal_code,
                                               reply.snapshot.approve_refusal_message)
        if refusal is None:
            async with self.db.single_statement("start_approve_saga") as uow:
                started = await self.saga.start(uow, target_id, moderator_id)
            if started is not None:
                decision, first_step = started
                self.saga.dispatch(first_step)
                return decision, False, False
        # Refused, or another approve is live: an approve that counts (a
        # concurrent one that locked the target, or one that succeeded)
        # answers for this one.
        current = await self._current_approve(target_id)
        if current is not None:
            return current, current.status == "approved", True
        if refusal is not None:
            raise refusal
        raise Conflict("the target's approval changed meanwhile; try again")

    async def _current_approve(self, target_id: str) -> Decision | None:
        async with self.db.single_statement("read_current_approve") as uow:
            return await store.current_approve(uow, target_id)

    async def Reject(self, request, context):
        actor = require_actor()
        domain.require_moderator(actor.role)
        target_id = parse_uuid(request.target_id, "target_id")
        reason = request.reason.strip()
        if not reason or len(reason) > MAX_REASON:
            raise InvalidInput(f"reason is required (at most {MAX_REASON} characters)")
        reply = await ask(self.campaigns.RejectTarget, campaigns_pb2.RejectTargetRequest(
            target_id=target_id, moderator_id=actor.id, reason=reason))
        async with self.db.single_statement("record_rejection") as uow:
            await store.insert_reject(uow, target_id, actor.id, reason)
        return moderation_pb2.RejectResponse(target=reply.target)

    async def GetDecision(self, request, context):
        domain.require_moderator(require_actor().role)
        target_id = parse_uuid(request.target_id, "target_id")
        async with self.db.single_statement("read_latest_decision") as uow:
            decision = await store.latest_decision(uow, target_id)
        if decision is None:
            raise NotFound("No decision for this target")
        return moderation_pb2.GetDecisionResponse(decision=decision_message(decision))

    async def ListQueue(self, request, context):
        domain.require_moderator(require_actor().role)
        reply = await ask(self.campaigns.ListSubmittedTargets, campaigns_pb2.ListSubmittedTargetsRequest(
            limit=page_limit(request.limit), cursor=request.cursor))
        return moderation_pb2.ListQueueResponse(items=reply.items, next_cursor=reply.next_cursor)

    async def ListLiveDecisions(self, request, context):
        require_actor().require("admin", "system")
        async with self.db.single_statement("list_live_decisions") as uow:
            decisions = await store.live_decisions(uow)
        return moderation_pb2.ListLiveDecisionsResponse(decisions=[decision_message(d) for d in decisions])
