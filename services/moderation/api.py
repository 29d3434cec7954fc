"""gRPC servicer of moderation: translate, call the use case, translate back."""
from adtech.moderation.v1 import moderation_pb2, moderation_pb2_grpc
from common.auth import parse_uuid, require_actor
from common.pagination import page_limit
from common.timestamps import to_timestamp
from services.moderation.domain import Decision
from services.moderation.usecases import Moderation


def decision_message(d: Decision) -> moderation_pb2.Decision:
    return moderation_pb2.Decision(
        decision_id=d.id, target_id=d.target_id, decision=d.kind, status=d.status, reason=d.reason or "",
        post_job_id=d.post_job_id or "", escrow_id=d.escrow_id or "", moderator_id=d.moderator_id,
        reason_message=d.reason_message or "",
        decided_at=to_timestamp(d.decided_at))


class ModerationServicer(moderation_pb2_grpc.ModerationServiceServicer):
    def __init__(self, moderation: Moderation):
        self.moderation = moderation
        self.saga = moderation.saga  # tests steer the saga's peers through it

    async def Approve(self, request, context):
        outcome = await self.moderation.approve(require_actor(), parse_uuid(request.target_id, "target_id"),
                                                request.wait_ms)
        return moderation_pb2.ApproveResponse(decision=decision_message(outcome.decision),
                                              already_approved=outcome.already_approved,
                                              settled=outcome.decision.settled)

    async def Reject(self, request, context):
        target = await self.moderation.reject(require_actor(), parse_uuid(request.target_id, "target_id"),
                                              request.reason, request.wait_ms)
        return moderation_pb2.RejectResponse(target=target)

    async def GetDecision(self, request, context):
        decision = await self.moderation.latest_decision(require_actor(), parse_uuid(request.target_id, "target_id"))
        return moderation_pb2.GetDecisionResponse(decision=decision_message(decision))

    async def ListQueue(self, request, context):
        reply = await self.moderation.queue(require_actor(), page_limit(request.limit), request.cursor)
        return moderation_pb2.ListQueueResponse(items=reply.items, next_cursor=reply.next_cursor)

    async def ListTargetDecisions(self, request, context):
        decisions, cursor = await self.moderation.target_decisions(
            require_actor(), parse_uuid(request.target_id, "target_id"), page_limit(request.limit), request.cursor)
        return moderation_pb2.ListTargetDecisionsResponse(decisions=[decision_message(d) for d in decisions],
                                                          next_cursor=cursor)

    async def ListLiveDecisions(self, request, context):
        decisions = await self.moderation.live_decisions(require_actor())
        return moderation_pb2.ListLiveDecisionsResponse(decisions=[decision_message(d) for d in decisions])
