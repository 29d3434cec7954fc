"""Moderation (admins): the queue, approve through the saga, reject, and
the decision about a target."""
import re

import grpc
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from adtech.moderation.v1 import moderation_pb2 as pb
from common.reasons import Reason
from gateway import views
from gateway.deps import Admin, ModerationApi, Page
from gateway.errors import SNAKE_CASE, ApiError, http_error_for
from gateway.inputs import Rejection, TargetId

router = APIRouter(prefix="/api/moderation", tags=["moderation"])

_CODE = re.compile(SNAKE_CASE)
FAILURE_MESSAGES = {Reason.INSUFFICIENT_FUNDS: "the advertiser's wallet cannot cover the price"}


@router.get("/queue", response_model=views.QueuePage)
async def queue(user: Admin, moderation: ModerationApi, page: Page) -> views.QueuePage:
    """Submitted targets, oldest submission first, with their channel, creatives and campaign."""
    reply = await moderation.ListQueue(pb.ListQueueRequest(limit=page.limit, cursor=page.cursor))
    return views.QueuePage(items=[views.queue_item(i) for i in reply.items], next_cursor=views.next_cursor(reply))


@router.post("/targets/{targetId}/approve", response_model=views.Approved, responses={
    202: {"model": views.Approving, "description": "The saga has not ended within the wait"}})
async def approve(target_id: TargetId, user: Admin, moderation: ModerationApi, request: Request) -> JSONResponse:
    """Approves a submitted target: holds its price in escrow and creates its
    post job, as one outcome. Waits a bounded time for the saga: 200 with the
    result, 202 while it still runs. Repeating it returns the same post job and escrow."""
    settings = request.app.state.settings
    reply = await moderation.Approve(pb.ApproveRequest(target_id=str(target_id), wait_ms=settings.moderation_approve_wait_ms),
                                     timeout=settings.moderation_call_deadline_s())
    d = reply.decision
    if not reply.settled:
        body = views.Approving(target_id=d.target_id or str(target_id), decision_id=d.decision_id)
        return JSONResponse(body.model_dump(by_alias=True), status_code=202)
    if d.status == "approved":
        body = views.Approved(target_id=d.target_id or str(target_id), post_job_id=d.post_job_id or None,
                              escrow_id=d.escrow_id or None, already_approved=reply.already_approved)
        return JSONResponse(body.model_dump(by_alias=True), status_code=200)
    raise _refusal(d.reason, d.reason_message)


def _refusal(reason: str, message: str) -> ApiError:
    """A saga that ended without approving, answered as the refusal of its
    step (FAILED_PRECONDITION with that reason) is mapped: 402 for money, else 400."""
    if reason and _CODE.match(reason):
        mapped = http_error_for(grpc.StatusCode.FAILED_PRECONDITION, reason, message or FAILURE_MESSAGES.get(
            reason, f"approve failed: {reason.replace('_', ' ')}"))
        return ApiError(mapped.status, mapped.code, mapped.message)
    return ApiError(400, Reason.APPROVE_FAILED, message or reason or "approve failed")


@router.post("/targets/{targetId}/reject", response_model=views.Target)
async def reject(target_id: TargetId, body: Rejection, user: Admin, moderation: ModerationApi,
                 request: Request) -> views.Target:
    """Rejects a submitted target with a reason (409 while it is being approved)."""
    settings = request.app.state.settings
    reply = await moderation.Reject(pb.RejectRequest(target_id=str(target_id), reason=body.reason,
                                                     wait_ms=settings.moderation_approve_wait_ms),
                                    timeout=settings.moderation_call_deadline_s())
    return views.target(reply.target)


@router.get("/targets/{targetId}", response_model=views.Decision)
async def decision(target_id: TargetId, user: Admin, moderation: ModerationApi) -> views.Decision:
    """The latest decision about a target; 404 when never decided."""
    reply = await moderation.GetDecision(pb.GetDecisionRequest(target_id=str(target_id)))
    return views.decision(reply.decision)


@router.get("/targets/{targetId}/decisions", response_model=views.PastDecisionPage)
async def target_decisions(target_id: TargetId, user: Admin, moderation: ModerationApi,
                           page: Page) -> views.PastDecisionPage:
    """Every decision about a target, newest first (an approve refused at once
    and a reject that was refused decided nothing and are not listed); an
    empty page when never decided."""
    reply = await moderation.ListTargetDecisions(pb.ListTargetDecisionsRequest(
        target_id=str(target_id), limit=page.limit, cursor=page.cursor))
    return views.PastDecisionPage(items=[views.past_decision(d) for d in reply.decisions],
                                  next_cursor=views.next_cursor(reply))
