"""Moderation's use cases: approve (start or join the saga, wait a bounded
time for its end), reject, and the reads. Each opens its own unit of work;
peers' refusals pass through unchanged."""
import dataclasses
import datetime as dt
import uuid

import grpc

from adtech.campaigns.v1 import campaigns_pb2, campaigns_pb2_grpc
from common.auth import Actor
from common.db import Database
from common.errors import Conflict, NotFound, Unavailable
from common.grpc_errors import to_domain_error
from common.pagination import decode_cursor, encode_cursor
from common.reasons import Reason
from services.moderation import domain, store
from services.moderation.domain import Decision
from services.moderation.saga import DecisionSagas


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


# How often an approve tries to start or join before answering 409: each
# failed try means a concurrent approve ended between two statements.
START_ATTEMPTS = 5


@dataclasses.dataclass(frozen=True)
class ApproveOutcome:
    decision: Decision
    already_approved: bool  # an earlier approve had already succeeded


class Moderation:
    def __init__(self, db: Database, campaigns: campaigns_pb2_grpc.CampaignsServiceStub, saga: DecisionSagas):
        self.db = db
        self.campaigns = campaigns
        self.saga = saga

    async def approve(self, moderator: Actor, target_id: str, wait_ms: int) -> ApproveOutcome:
        """Starts the approve saga of a target, or joins the approve that
        counts for it, and waits up to `wait_ms` for it to end. Campaigns
        judges the seed's preconditions in the saga's first step
        (ReserveTarget), so a refused approve is answered as soon as that
        step refuses, having locked, held and created nothing."""
        domain.require_moderator(moderator.role)
        domain.check_wait(wait_ms)
        decision, already, joined = await self._begin(target_id, moderator.id)
        if not decision.settled and wait_ms:
            ended = await self.saga.wait_settled(decision.id, wait_ms / 1000,
                                                 recheck=(lambda: self._read(decision.id)) if joined else None)
            decision = ended or await self._read(decision.id)
        if domain.refused_at_start(decision):
            # Refused because a concurrent approve won meanwhile: that one answers.
            current = await self._current_approve(target_id)
            if current is not None and current.status == "approved":
                return await self._still_approved(ApproveOutcome(current, True))
            raise domain.refusal(decision.reason or Reason.APPROVE_REFUSED, decision.reason_message or "")
        if already:
            return await self._still_approved(ApproveOutcome(decision, already))
        return ApproveOutcome(decision, already)

    async def _still_approved(self, outcome: ApproveOutcome) -> ApproveOutcome:
        """An earlier approve answers a repeat only while the target is
        still approved: one cancelled since (its escrow refunded) is refused
        with its status, never reported approved."""
        reply = await ask(self.campaigns.GetTargetSnapshot,
                          campaigns_pb2.GetTargetSnapshotRequest(target_id=outcome.decision.target_id))
        domain.check_still_approved(reply.snapshot.target.status)
        return outcome

    async def _begin(self, target_id: str, moderator_id: str) -> tuple[Decision, bool, bool]:
        """(decision, already_approved, joined). The decision and its first
        step commit together, unless the target has an approved decision or
        a live approve already; the step is sent at once."""
        for _ in range(START_ATTEMPTS):
            async with self.db.single_statement("start_approve_saga") as uow:
                started = await self.saga.start_approve(uow, target_id, moderator_id)
            if started is not None:
                decision, first_step = started
                self.saga.dispatch(first_step)
                return decision, False, False
            # The approve that counts (a concurrent live one, or one that
            # succeeded) answers for this one. None: the live one it met has
            # ended since without approving (refused at once, say), so this
            # approve starts again and gets an answer of its own.
            current = await self._current_approve(target_id)
            if current is not None:
                return current, current.status == "approved", True
        raise Conflict("the target's approval changed meanwhile; try again")

    async def reject(self, moderator: Actor, target_id: str, reason: str, wait_ms: int) -> campaigns_pb2.Target:
        """submitted → rejected, as a recorded step: the pending decision and
        the step commit together, campaigns carries it out (refusing with
        409 while the target is being approved) and answers a repeat from
        its record, so both services always end with the same outcome."""
        domain.require_moderator(moderator.role)
        reason = domain.valid_reason(reason)
        domain.check_wait(wait_ms)
        wait_s = (wait_ms or domain.DEFAULT_REJECT_WAIT_MS) / 1000
        await ask(self.campaigns.GetTargetSnapshot, campaigns_pb2.GetTargetSnapshotRequest(target_id=target_id))
        async with self.db.single_statement("start_reject") as uow:
            started = await self.saga.start_reject(uow, target_id, moderator.id, reason)
        joined = started is None
        if joined:  # a reject of this target is in flight: its outcome answers this one
            async with self.db.single_statement("read_pending_reject") as uow:
                decision = await store.pending_reject(uow, target_id)
            if decision is None:
                raise Conflict("The target's rejection changed meanwhile; try again")
        else:
            decision, step = started
            self.saga.dispatch(step)
        ended = await self.saga.wait_settled(decision.id, wait_s,
                                             recheck=(lambda: self._read(decision.id)) if joined else None)
        ended = ended or await self._read(decision.id)
        if ended.status == "failed":
            raise domain.refusal(ended.reason, ended.reason_message or ended.reason)
        if ended.status != "rejected":
            raise Unavailable("The rejection is still being carried out; GET the decision for its end")
        reply = await ask(self.campaigns.GetTargetSnapshot, campaigns_pb2.GetTargetSnapshotRequest(target_id=target_id))
        return reply.snapshot.target

    async def latest_decision(self, moderator: Actor, target_id: str) -> Decision:
        domain.require_moderator(moderator.role)
        async with self.db.single_statement("read_latest_decision") as uow:
            decision = await store.latest_decision(uow, target_id)
        if decision is None:
            raise NotFound("No decision for this target")
        return decision

    async def target_decisions(self, moderator: Actor, target_id: str, limit: int,
                               cursor: str) -> tuple[list[Decision], str]:
        """A target's decisions, newest first, a page at a time: (page, next cursor or "")."""
        domain.require_moderator(moderator.role)
        after = decode_cursor(cursor, dt.datetime, uuid.UUID)
        async with self.db.single_statement("list_target_decisions") as uow:
            rows = await store.target_decisions(uow, target_id, limit + 1, after)
        page = rows[:limit]
        more = len(rows) > limit
        return page, encode_cursor(page[-1].decided_at, page[-1].id) if more else ""

    async def queue(self, moderator: Actor, limit: int, cursor: str):
        domain.require_moderator(moderator.role)
        return await ask(self.campaigns.ListSubmittedTargets,
                         campaigns_pb2.ListSubmittedTargetsRequest(limit=limit, cursor=cursor))

    async def live_decisions(self, actor: Actor) -> list[Decision]:
        actor.require("admin", "system")
        async with self.db.single_statement("list_live_decisions") as uow:
            return await store.live_decisions(uow)

    async def _read(self, decision_id: str) -> Decision:
        async with self.db.single_statement("read_decision") as uow:
            return await store.get_decision(uow, decision_id)

    async def _current_approve(self, target_id: str) -> Decision | None:
        async with self.db.single_statement("read_current_approve") as uow:
            return await store.current_approve(uow, target_id)

