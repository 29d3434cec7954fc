"""Moderation's rules: the approve saga as a lifecycle table, what ends it,
and how a peer's answer is classified. Pure: no I/O, no clock."""
import dataclasses
import datetime as dt

from common.errors import Conflict, DomainError, Forbidden, InvalidInput, NotFound, PreconditionFailed
from common.fsm import assert_transition
from common.reasons import Reason

SYSTEM = "system"

# pending → reserved → escrow_held → approved is the way forward; every
# other move is a refusal, with the compensation its state owes.
SAGA_MOVES = {
    ("pending", "reserved"): {SYSTEM},
    ("pending", "failed"): {SYSTEM},
    ("reserved", "escrow_held"): {SYSTEM},
    ("reserved", "failed"): {SYSTEM},  # after the target was released
    ("escrow_held", "approved"): {SYSTEM},
    ("escrow_held", "compensating"): {SYSTEM},
    ("compensating", "failed"): {SYSTEM},  # after the escrow was refunded
    ("pending", "rejected"): {SYSTEM},  # a reject decision campaigns carried out
}
LIVE = ("pending", "reserved", "escrow_held", "compensating")  # in one_live_approve_per_target's order
SETTLED = frozenset({"approved", "failed", "rejected"})
# A decision that ends is announced here (NOTIFY, payload: its id), so an
# approve waiting on any replica learns the end carried out on another.
SETTLED_CHANNEL = "adtech_decision_settled"

# Outbox topics, one per saga step; each message carries the decision id.
RESERVE = "approve.reserve_target"
HOLD = "approve.hold_escrow"
CONFIRM = "approve.approve_target"
RELEASE = "approve.release_target"
REFUND = "approve.refund_escrow"
REJECT = "reject.reject_target"

# Conflicts (ABORTED) that a peer decided and recorded for the decision: a
# repeat gets the same answer, so they end the step like a refusal.
RECORDED_CONFLICTS = frozenset({Reason.TARGET_BEING_APPROVED})

# How long a reject waits for campaigns' answer, unless the caller says,
# before saying it is still being carried out (the step goes on;
# GetDecision shows its end).
DEFAULT_REJECT_WAIT_MS = 3000



def assert_saga_move(current: str, wanted: str) -> None:
    assert_transition(SAGA_MOVES, current, wanted, SYSTEM, subject="Approve saga")


MAX_WAIT_MS = 30_000
MAX_REASON = 1000


def check_wait(wait_ms: int) -> None:
    if not 0 <= wait_ms <= MAX_WAIT_MS:
        raise InvalidInput(f"wait_ms must be between 0 and {MAX_WAIT_MS}")


def valid_reason(reason: str) -> str:
    """A rejection's reason, trimmed: required, at most MAX_REASON characters."""
    reason = reason.strip()
    if not reason or len(reason) > MAX_REASON:
        raise InvalidInput(f"reason is required (at most {MAX_REASON} characters)")
    return reason


def refusal(code: str, message: str) -> DomainError:
    """The error a peer's recorded refusal of a decision's step answers, as
    campaigns answered it: 409 while the target is being approved, 404 for
    no such target, else 400."""
    if code in RECORDED_CONFLICTS:
        return Conflict(message, code=code)
    if code == Reason.NOT_FOUND:
        return NotFound(message)
    return PreconditionFailed(message or code, code=code)


# Target statuses in which an earlier approve still answers a repeat.
STILL_APPROVED = frozenset({"approved", "published"})


def check_still_approved(target_status: str) -> None:
    if target_status not in STILL_APPROVED:
        code = Reason.TARGET_CANCELLED if target_status == "cancelled" else Reason.TARGET_NOT_SUBMITTED
        raise PreconditionFailed(f"Target cannot be approved from status {target_status}", code=code)


def require_moderator(role: str) -> None:
    if role != "admin":
        raise Forbidden("only an admin may moderate")


@dataclasses.dataclass(frozen=True)
class Decision:
    id: str
    target_id: str
    kind: str  # approve | reject
    status: str
    moderator_id: str
    reason: str | None = None
    reason_message: str | None = None
    escrow_id: str | None = None
    post_job_id: str | None = None
    advertiser_id: str | None = None
    publisher_id: str | None = None
    amount: int | None = None
    currency: str | None = None
    decided_at: dt.datetime | None = None  # read by the list of a target's decisions only

    @property
    def settled(self) -> bool:
        return self.status in SETTLED


def refused_at_start(decision: Decision) -> bool:
    """An approve that campaigns refused in its first step (ReserveTarget:
    the seed's preconditions) decided nothing: it never locked the target,
    and the terms it would hold were never read. Answered as the refusal."""
    return decision.kind == "approve" and decision.status == "failed" and decision.advertiser_id is None
