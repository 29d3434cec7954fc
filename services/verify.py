"""The seed's post-deployment checks across services, asked through each
service's own API (no service's tables are read from outside it)."""
import collections
import dataclasses

from adtech.campaigns.v1 import campaigns_pb2
from adtech.moderation.v1 import moderation_pb2
from adtech.ops.v1 import ops_pb2
from adtech.payments.v1 import payments_pb2
from common.auth import SYSTEM, acting_as

OPEN_ESCROW = {"held", "released"}
APPROVED_OR_LATER = {"approved", "published", "completed"}
# A target whose escrow must still be held: its post's outcome is not known.
HOLDING = {"approved", "published"}


@dataclasses.dataclass
class Check:
    name: str
    violations: list[str]

    @property
    def ok(self) -> bool:
        return not self.violations


async def _all_pages(method, request_type, field: str) -> list:
    items, cursor = [], ""
    while True:
        reply = await method(request_type(limit=200, cursor=cursor))
        items.extend(getattr(reply, field))
        cursor = reply.next_cursor
        if not cursor:
            return items


def refunded_check(status: str, targets, escrows_of) -> Check:
    """Every target that ended `status` had its escrow (if any) refunded."""
    return Check(f"{status}_target_escrow_refunded", [
        f"{t.target_id}: {status}, escrows {[e.status for e in escrows_of[t.target_id]]}"
        for t in targets if t.status == status and any(e.status != "refunded" for e in escrows_of[t.target_id])])


async def verify(campaigns, payments, moderation, ops: dict, *, max_outbox_age_s: float = 60.0) -> list[Check]:
    """campaigns/payments/moderation are stubs; ops maps a service name to its
    OpsService stub. Returns every check with its violations."""
    with acting_as(SYSTEM):
        targets = await _all_pages(campaigns.ListTargetAudit, campaigns_pb2.ListTargetAuditRequest, "targets")
        escrows = await _all_pages(payments.ListEscrows, payments_pb2.ListEscrowsRequest, "escrows")
        live = (await moderation.ListLiveDecisions(moderation_pb2.ListLiveDecisionsRequest())).decisions
        ledger = await payments.Reconcile(payments_pb2.ReconcileRequest())
        outboxes = {name: await stub.GetOutboxStats(ops_pb2.GetOutboxStatsRequest()) for name, stub in ops.items()}

    escrows_of = collections.defaultdict(list)
    for escrow in escrows:
        escrows_of[escrow.target_id].append(escrow)
    live_targets = {d.target_id for d in live}
    status_of = {t.target_id: t for t in targets}

    checks = [
        Check("escrow_per_target_unique", [f"{t}: {len(e)} escrows" for t, e in escrows_of.items() if len(e) > 1]),
        Check("post_job_per_target_unique", [f"{t.target_id}: {t.post_jobs} post jobs" for t in targets if t.post_jobs > 1]),
        Check("approved_target_has_escrow_and_post_job", [
            f"{t.target_id} ({t.status}): escrows {[e.status for e in escrows_of[t.target_id]]}, post jobs {t.post_jobs}"
            for t in targets if t.status in APPROVED_OR_LATER and (
                [e.status for e in escrows_of[t.target_id] if e.status in OPEN_ESCROW] == [] or
                len(escrows_of[t.target_id]) != 1 or t.post_jobs != 1)]),
        Check("held_escrow_has_approved_target_or_running_saga", [
            f"{e.target_id}: escrow held, target {status_of[e.target_id].status if e.target_id in status_of else 'unknown'}"
            for e in escrows if e.status == "held" and e.target_id not in live_targets
            and (e.target_id not in status_of or status_of[e.target_id].status not in HOLDING)]),
        # Publication settles each target once: paid out exactly when its
        # post stayed up, refunded when it failed (after the outbox drains).
        Check("completed_target_escrow_released", [
            f"{t.target_id}: completed, escrows {[e.status for e in escrows_of[t.target_id]]}"
            for t in targets if t.status == "completed"
            and [e.status for e in escrows_of[t.target_id]] != ["released"]]),
        Check("released_escrow_has_completed_target", [
            f"{e.target_id}: escrow released, target {status_of[e.target_id].status if e.target_id in status_of else 'unknown'}"
            for e in escrows if e.status == "released"
            and (e.target_id not in status_of or status_of[e.target_id].status != "completed")]),
        refunded_check("failed", targets, escrows_of),
        # An owner's decline or silence refunds the advertiser.
        refunded_check("declined", targets, escrows_of),
        # No post goes to a chat whose listing is not its owner's: every post
        # since ownership existed had the owner's account proven right before
        # it, and went to its listing's chat.
        Check("post_went_to_its_owners_chat", [
            f"{t.target_id}: posted to chat {t.posted_chat_id} (listing's chat {t.listing_chat_id}),"
            f" owner's account checked: {t.owner_telegram_user_id or 'none'}"
            for t in targets if t.posted_since_ownership and (
                t.posted_chat_id != t.listing_chat_id or not t.owner_telegram_user_id)]),
        Check("no_target_left_approving", [
            f"{t.target_id}: approving without a running saga" for t in targets
            if t.status == "approving" and t.target_id not in live_targets]),
    ]
    checks += [Check(f"ledger:{c.name}", [] if c.ok else [c.detail or f"{c.violations} violations"]) for c in ledger.checks]
    for name, stats in outboxes.items():
        checks.append(Check(f"outbox:{name}:no_dead_letters", [f"{stats.dead} dead letters"] if stats.dead else []))
        checks.append(Check(f"outbox:{name}:oldest_pending_young", [
            f"oldest pending is {stats.oldest_pending_age_seconds:.1f}s old"]
            if stats.oldest_pending_age_seconds > max_outbox_age_s else []))
    return checks
