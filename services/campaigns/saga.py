"""Moderation's side of campaigns: the target snapshot and submitted queue,
and the approve saga's steps (DESIGN.md "Saga step rules" 1, 2, 4, 5).

Each step locks the target row first, then reads the record of
(decision_id, step): all calls for one target are serialised, so a repeat
is always answered from the record, never re-evaluated. A unique violation
on the record can then only mean a decision reused for another target.
ReserveTarget and ApproveTarget read the record in their write statement
(saga_store), which records and changes nothing when there is one."""
from collections.abc import Awaitable
import datetime as dt
from typing import TypeVar

from common.auth import Actor
from common.db import Database, DatabaseError, UnitOfWork, is_unique_violation
from common.errors import Conflict, DomainError, InvalidInput, NotFound
from common.fsm import assert_transition
from common.pagination import page_limit
from services.campaigns import domain, saga_store, store
from services.campaigns.targets import target_view
from services.campaigns.usecases import TARGET_NOT_FOUND, cursor_key, paginate

T = TypeVar("T")


def _require_saga_caller(actor: Actor) -> None:
    actor.require("admin", "system")


async def _locked_target(uow: UnitOfWork, target_id: str, *, campaign_share: bool = False):
    target = await saga_store.lock_target(uow, target_id, campaign_share=campaign_share)
    if target is None:
        raise NotFound(TARGET_NOT_FOUND)
    return target


async def _recorded(uow: UnitOfWork, decision_id: str, step: str, target_id: str):
    record = await store.recorded_step(uow, decision_id, step)
    if record is not None and str(record.target_id) != target_id:
        raise InvalidInput(f"decision {decision_id} belongs to another target")
    return record


def _decided_before(row, decision_id: str, target_id: str) -> bool:
    """Whether a step's write found the step recorded already (it then wrote
    nothing); a record of another target means the decision id was reused."""
    if row.recorded_outcome is None:
        return False
    if str(row.recorded_for) != target_id:
        raise InvalidInput(f"decision {decision_id} belongs to another target")
    return True


async def _record(uow: UnitOfWork, decision_id: str, step: str, target_id: str, outcome: str, detail: dict) -> None:
    await _deciding(store.record_step(uow, decision_id, step, target_id, outcome, detail))


async def _deciding(write: Awaitable[T]) -> T:
    """A write recording a step. The target is locked, so a unique violation
    on the record means the decision is being decided for another target."""
    try:
        return await write
    except DatabaseError as error:
        if is_unique_violation(error, "saga_steps_pkey"):
            raise Conflict("this step of the decision was decided concurrently; repeat it") from None
        raise


def _refusal(detail: dict) -> domain.SagaStepRefused:
    return domain.SagaStepRefused(detail["message"], code=detail["code"])


async def snapshot(db: Database, actor: Actor, target_id: str, *, now: dt.datetime, min_lead_ms: int):
    """The target with everything the approve preconditions look at, and
    campaigns' own verdict on them right now."""
    _require_saga_caller(actor)
    async with db.single_statement("read_target_snapshot") as uow:
        target = await saga_store.snapshot(uow, target_id)
    if target is None:
        raise NotFound(TARGET_NOT_FOUND)
    return target, domain.approve_refusal(target_view(target), now, min_lead_ms)


async def submitted_queue(db: Database, actor: Actor, *, limit: int, cursor: str):
    """Submitted targets, oldest submission first."""
    _require_saga_caller(actor)
    limit, after = page_limit(limit), cursor_key(cursor)
    async with db.unit_of_work("list_submitted_targets") as uow:
        rows = await store.list_submitted(uow, after=after, limit=limit + 1)
        rows, next_cursor = paginate(rows, limit, key=lambda r: store.page_key(r, "submitted_at"))
        creatives = await store.creatives_of(uow, list({r.campaign_id for r in rows}))
    return [(r, creatives[str(r.campaign_id)]) for r in rows], next_cursor


async def reserve(db: Database, actor: Actor, target_id: str, decision_id: str, *, now: dt.datetime, min_lead_ms: int):
    """submitted → approving for this decision, after re-judging the approve
    preconditions in this transaction. At most once per decision: a repeat
    gets the recorded outcome (rule 2)."""
    _require_saga_caller(actor)
    # The usual case is one statement, its own transaction: the target is
    # approvable and the step has no record. Its write is guarded by exactly
    # that, so when it moves nothing it wrote nothing either, and the step is
    # judged below, under the locks, where a refusal is recorded with its reason.
    async with db.single_statement("reserve_target") as uow:
        row = await _deciding(saga_store.reserve_if_approvable(
            uow, actor, target_id, decision_id, domain.APPROVABLE, domain.earliest_schedule(now, min_lead_ms)))
    if row.recorded_outcome is None and row.id is not None:
        return row
    async with db.unit_of_work("reserve_target_under_lock") as uow:
        target = await _locked_target(uow, target_id, campaign_share=True)
        # Judged now, but applied by the write only if the step has no record
        # yet; otherwise the record answers (the write re-reads it under the lock).
        refusal = domain.approve_refusal(target_view(target), now, min_lead_ms)
        if refusal is None:
            assert_transition(domain.TARGET_MOVES, "submitted", "approving", "system", subject="Target transition")
            row = await _deciding(saga_store.reserve(uow, actor, target_id, decision_id))
        else:
            code, message = refusal
            row = await _deciding(saga_store.refuse(uow, target_id, decision_id, "reserve",
                                                    {"code": code, "message": message}))
        if _decided_before(row, decision_id, target_id):
            if row.recorded_outcome != "reserved":
                raise _refusal(row.recorded_detail)
            return target
        if refusal is None and row.id is None:  # cannot happen: the locked target was submitted
            raise Conflict("Target was changed concurrently; try again")
        await uow.commit()
    if refusal is not None:
        raise domain.ApproveRefused(message, code=code)
    return row


async def release(db: Database, actor: Actor, target_id: str, decision_id: str) -> bool:
    """approving → submitted, only if this decision holds the lock (rule 4).
    It also fences the decision: a reserve of it arriving later is refused,
    so a late duplicate cannot lock the target for good."""
    _require_saga_caller(actor)
    async with db.unit_of_work("release_target") as uow:
        await _locked_target(uow, target_id)
        record = await _recorded(uow, decision_id, "release", target_id)
        if record is not None:
            return record.outcome == "released"
        released = await store.release_target(uow, target_id, decision_id)
        await _record(uow, decision_id, "release", target_id, "released" if released else "noop", {})
        await store.fence_step(uow, decision_id, "reserve", target_id, "refused", {
            "code": "decision_released", "message": "This decision was released; it cannot reserve again"})
        if released:
            await store.audit(uow, actor, "target_released", "target", target_id, from_status="approving",
                              to_status="submitted", detail={"decision_id": decision_id})
        await uow.commit()
    return released


async def approve(db: Database, actor: Actor, target_id: str, decision_id: str, *, moderator_id: str,
                  escrow_id: str, now: dt.datetime):
    """approving → approved with its post job, in one transaction, only for
    the decision holding the lock. A repeat returns the same post job even
    if the target was cancelled since, or the same refusal (rule 5)."""
    _require_saga_caller(actor)
    # The usual case is one statement, its own transaction: the target is
    # approving for this decision and the step has no record yet. The write
    # is guarded by exactly that, so when it moves nothing (a repeat, a
    # cancellation that won, another decision) it wrote nothing either, and
    # the step is judged again below, under the target's lock.
    async with db.single_statement("approve_target") as uow:
        row = await _deciding(saga_store.approve(uow, actor, target_id, decision_id, moderator_id=moderator_id,
                                                 escrow_id=escrow_id, now=now))
    if row.recorded_outcome is None and row.id is not None:
        return row, saga_store.post_job_of(row)
    async with db.unit_of_work("approve_target_under_lock") as uow:
        target = await _locked_target(uow, target_id)
        # Judged now, but applied by the write only if the step has no record
        # yet; otherwise the record answers (the write re-reads it under the lock).
        if target.status == "approving" and str(target.reserved_by) == decision_id:
            refusal = None
            assert_transition(domain.TARGET_MOVES, "approving", "approved", "system", subject="Target transition")
            row = await _deciding(saga_store.approve(uow, actor, target_id, decision_id, moderator_id=moderator_id,
                                                     escrow_id=escrow_id, now=now))
        else:
            refusal = domain.approve_step_refusal(target.status)
            row = await _deciding(saga_store.refuse(uow, target_id, decision_id, "approve", refusal))
        if _decided_before(row, decision_id, target_id):
            if row.recorded_outcome != "approved":
                raise _refusal(row.recorded_detail)
            return target, saga_store.post_job_of(row)
        if refusal is None and row.id is None:  # cannot happen: the locked target was reserved by us
            raise Conflict("Target was changed concurrently; try again")
        await uow.commit()
    if refusal is not None:
        raise _refusal(refusal)
    return row, saga_store.post_job_of(row)


async def reject(db: Database, actor: Actor, target_id: str, *, moderator_id: str, reason: str, now: dt.datetime,
                 decision_id: str = ""):
    """submitted → rejected with the moderator's reason. An admin calls it,
    or the system on an admin's behalf (the moderator is the actor of the
    table's move either way). With a decision id the outcome, refusals
    included, is recorded and a repeat is answered from the record."""
    _require_saga_caller(actor)
    reason = domain.valid_text(reason, "reason", domain.REASON_MAX)
    async with db.unit_of_work("reject_target") as uow:
        target = await _locked_target(uow, target_id)
        if decision_id:
            record = await _recorded(uow, decision_id, "reject", target_id)
            if record is not None:
                if record.outcome != "rejected":
                    raise domain.reject_refusal_from_record(record.detail)
                return target
        try:
            domain.check_reject(target.status)
        except DomainError as refusal:
            if decision_id:
                await _record(uow, decision_id, "reject", target_id, "refused",
                              {"code": refusal.code, "message": refusal.message})
                await uow.commit()
            raise
        await store.move_target(uow, target_id, expected=["submitted"], status="rejected", moderated_by=moderator_id,
                                moderated_at=now, moderation_reason=reason)
        if decision_id:
            await _record(uow, decision_id, "reject", target_id, "rejected", {})
        await store.audit(uow, actor, "target_rejected", "target", target_id, from_status="submitted",
                          to_status="rejected", detail={"moderator_id": moderator_id, "reason": reason,
                                                        "decision_id": decision_id or None})
        target = await store.get_target(uow, target_id)
        await uow.commit()
    return target


async def target_audit(db: Database, actor: Actor, *, limit: int, cursor: str):
    _require_saga_caller(actor)
    limit, after = page_limit(limit), cursor_key(cursor)
    async with db.unit_of_work("list_target_audit") as uow:
        rows = await store.target_audit(uow, after=after, limit=limit + 1)
    return paginate(rows, limit)
