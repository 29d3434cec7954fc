"""Campaigns' side of the approve and reject decisions: its saga steps
(docs/design.md "Saga step rules" 1, 2, 4, 5), as a step table carried out by
common/participant.py. Each step is one statement (steps_store) and, only when
that statement moved nothing and found no record, a judgement under the
target's lock of why the step is refused, which is then recorded.

A step is an admin's or the system's call (moderation's relay)."""
import datetime as dt
import json

from common.auth import Actor
from common.reasons import Reason
from common.db import Database
from common.errors import DomainError
from common.participant import Participant, Step
from common.steps import StepRefused
from services.campaigns import domain, steps_store, store
from services.campaigns.domain import TARGET_NOT_FOUND
from services.campaigns.usecases.targets import target_view


def _refused(refusal: tuple[str, str] | None) -> StepRefused | None:
    if refusal is None:
        return None
    code, message = refusal
    return StepRefused(message, code=code)


def _judge_reserve(target, params) -> StepRefused | None:
    return _refused(domain.approve_refusal(target_view(target), params["now"], params["rules"]))


def _judge_approve(target, params) -> StepRefused | None:
    if target.status == "approving" and str(target.reserved_by) == params["decision_id"]:
        return None
    return _refused(domain.approve_step_refusal(target.status))


def _judge_reject(target, params) -> DomainError | None:
    try:
        domain.check_reject(target.status)
    except DomainError as refusal:
        return refusal
    return None


# The step table: what each step records when it succeeds, its statement,
# and why it is refused when its statement moved nothing.
STEPS = {
    "reserve": Step("reserve", frozenset({"reserved"}), steps_store.RESERVE, _judge_reserve),
    "release": Step("release", frozenset({"released", "noop"}), steps_store.RELEASE),
    "approve": Step("approve", frozenset({"approved"}), steps_store.APPROVE, _judge_approve),
    "reject": Step("reject", frozenset({"rejected"}), steps_store.REJECT, _judge_reject),
}


async def _lock_for_step(uow, target_id: str):
    # The campaign is locked FOR SHARE before the target (the order of every
    # path, store.py), so its status cannot change until the step commits.
    return await steps_store.lock_target_and_campaign(uow, target_id)


def _require_step_caller(actor: Actor) -> None:
    actor.require("admin", "system")


class CampaignSteps:
    """The steps as use cases: who may call them and what each answers."""

    def __init__(self, db: Database, *, rules: domain.BookingRules,
                 consent: domain.ConsentRules = domain.ConsentRules()):
        self.steps = Participant(db, STEPS, lock_target=_lock_for_step, target_missing=TARGET_NOT_FOUND,
                                 refusal_kinds={domain.TargetBeingApproved.code: domain.TargetBeingApproved})
        self.rules = rules
        self.consent = consent

    async def reserve(self, actor: Actor, target_id: str, decision_id: str, *, now: dt.datetime):
        """submitted → approving for this decision, if the approve
        preconditions hold now; at most once per decision (rule 2). Returns
        the target's view (the snapshot moderation's saga carries on)."""
        _require_step_caller(actor)
        done = await self.steps.carry_out("reserve", target_id, decision_id, {
            "now": now, "rules": self.rules, "earliest": self.rules.earliest(now), "latest": self.rules.latest(now),
            "campaign_status": domain.APPROVABLE.campaign_status, "channel_status": domain.APPROVABLE.channel_status,
            **steps_store.actor_params(actor)})
        return done.target

    async def release(self, actor: Actor, target_id: str, decision_id: str) -> bool:
        """approving → submitted, only if this decision holds the target
        (rule 4); fences the decision against a late reserve."""
        _require_step_caller(actor)
        done = await self.steps.carry_out("release", target_id, decision_id, {
            "fence": json.dumps({"code": Reason.DECISION_RELEASED,
                                 "message": "This decision was released; it cannot reserve again"}),
            **steps_store.actor_params(actor)})
        return done.outcome == "released"

    async def approve(self, actor: Actor, target_id: str, decision_id: str, *, moderator_id: str,
                      escrow_id: str, now: dt.datetime):
        """approving → approved with its one post job (awaiting the channel
        owner's answer unless the channel auto-accepts), only for the decision
        holding the target. A repeat returns the same post job even if the
        target was cancelled since, or the same refusal (rule 5)."""
        _require_step_caller(actor)
        job_id = store.new_id()
        done = await self.steps.carry_out("approve", target_id, decision_id, {
            "moderator": moderator_id, "escrow": escrow_id, "now": now, "job": job_id,
            "answer_s": float(self.consent.answer_s), "answer_lead_s": float(self.consent.lead_s),
            "approved_detail": json.dumps({"decision_id": decision_id, "moderator_id": moderator_id,
                                           "escrow_id": escrow_id, "post_job_id": job_id}),
            **steps_store.actor_params(actor)})
        return done.target, await self._post_job(target_id, done.row)

    async def reject(self, actor: Actor, target_id: str, decision_id: str, *, moderator_id: str, reason: str,
                     now: dt.datetime):
        """submitted → rejected with the moderator's reason, for a reject
        decision; refused with 409 while the target is being approved. The
        outcome, refusals included, is recorded; a repeat gets it."""
        _require_step_caller(actor)
        reason = domain.valid_text(reason, "reason", domain.REASON_MAX)
        done = await self.steps.carry_out("reject", target_id, decision_id, {
            "moderator": moderator_id, "reason": reason, "now": now, **steps_store.actor_params(actor)})
        return done.target

    async def _post_job(self, target_id: str, row):
        job = steps_store.post_job_of(row)
        if job is not None:
            return job
        async with self.steps.db.single_statement("read_post_job") as uow:
            found = await store.get_post_job(uow, target_id)
        return None if found is None else steps_store.PostJob(found.id, found.execute_at, found.status)


# The target move each step makes, as the FSM table allows it (a unit test
# holds them to domain.TARGET_MOVES).
STEP_MOVES = {
    "reserve": ("submitted", "approving"),
    "release": ("approving", "submitted"),
    "approve": ("approving", "approved"),
    "reject": ("submitted", "rejected"),
}
