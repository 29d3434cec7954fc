"""What the campaign and target use cases share: the campaign as its
owner or an admin may see it, keyset pages, and what a cancellation sets
off (post jobs cancelled, refunds queued through the outbox)."""
import datetime as dt
import uuid

from common import outbox
from common.auth import Actor
from common.db import UnitOfWork
from common.errors import NotFound
from common.pagination import decode_cursor, encode_cursor
from services.campaigns import domain, store


def paginate(rows: list, limit: int, key=store.page_key) -> tuple[list, str]:
    """Rows of one page (we fetch limit+1) and the cursor of the next."""
    if len(rows) <= limit:
        return rows, ""
    rows = rows[:limit]
    return rows, encode_cursor(*key(rows[-1]))


def cursor_key(cursor: str) -> tuple | None:
    return decode_cursor(cursor, dt.datetime, uuid.UUID)


async def campaign_for(uow: UnitOfWork, actor: Actor, campaign_id: str, *, lock: str | None = None):
    campaign = await store.get_campaign(uow, campaign_id, lock=lock)
    if campaign is None:
        raise NotFound("Campaign not found")
    domain.check_owner_or_admin(actor.id, actor.role, str(campaign.advertiser_id))
    return campaign


async def cascade_cancellation(uow: UnitOfWork, actor: Actor, campaign_id: str, statuses) -> None:
    """Cancels the campaign's targets in `statuses`, with what that sets off."""
    cancelled = await store.cancel_open_targets(uow, campaign_id, sorted(statuses))
    for row in cancelled:
        await store.audit(uow, actor, "target_cancelled_with_campaign", "target", row.id,
                          from_status=row.previous, to_status="cancelled")
    await cancel_consequences(uow, actor, [(row.id, row.previous) for row in cancelled])


async def cancel_consequences(uow: UnitOfWork, actor: Actor, targets: list[tuple]) -> None:
    """Queued post jobs of cancelled targets are cancelled; every target that
    may hold an escrow gets a refund message, committed with the cancel."""
    for job in await store.cancel_queued_post_jobs(uow, [target_id for target_id, _ in targets]):
        await store.audit(uow, actor, "post_job_cancelled", "post_job", job.id, from_status=job.previous,
                          to_status="cancelled", detail={"target_id": str(job.target_id)})
    for target_id, previous in targets:
        if previous in domain.REFUNDABLE:
            await outbox.enqueue(uow, domain.REFUND_TOPIC, str(target_id), {"target_id": str(target_id)})
