"""Campaign targets as their advertiser (owner) or an admin handles them:
create, list, read, submit for moderation, cancel."""
import datetime as dt

from common.auth import Actor
from common.db import Database, UnitOfWork
from common.errors import Conflict, InvalidInput, NotFound
from common.pagination import page_limit
from services.campaigns import domain, publication, steps_store, store
from services.campaigns import publication_store as jobs
from services.campaigns.domain import TARGET_NOT_FOUND
from services.campaigns.usecases.shared import campaign_for, cancel_consequences, cursor_key, paginate


def target_view(row) -> domain.TargetView:
    return domain.TargetView(status=row.status, campaign_id=str(row.campaign_id), campaign_status=row.campaign_status,
                             creatives=row.creatives_count, channel_status=row.channel_status,
                             scheduled_at=row.scheduled_at)


async def _target_in(uow: UnitOfWork, campaign_id: str, target_id: str, *, lock: bool = False):
    """The target, only if it belongs to the campaign of the path."""
    target = await store.get_target(uow, target_id, lock=lock)
    if target is None or str(target.campaign_id) != campaign_id:
        raise NotFound(TARGET_NOT_FOUND)
    return target


def _require_moderation_caller(actor: Actor) -> None:
    """Moderation's reads are for admins and the system."""
    actor.require("admin", "system")


class Targets:
    """Campaign targets as their advertiser or an admin handles them, and
    moderation's reads of them."""

    def __init__(self, db: Database, *, rules: domain.BookingRules):
        self.db = db
        self.rules = rules

    async def create_target(self, actor: Actor, campaign_id: str, *, channel_id: str,
                            scheduled_at: dt.datetime | None, now: dt.datetime):
        """The owner buys a post in a channel at a time; the price and currency
        are the channel's at this moment. The booking rules are checked now
        already (the slot is taken only at submit)."""
        if scheduled_at is None:
            raise InvalidInput("scheduledAt is required")
        domain.valid_time(scheduled_at, "scheduledAt")
        async with self.db.unit_of_work("create_target") as uow:
            campaign = await store.get_campaign(uow, campaign_id, lock="share")
            if campaign is None:
                raise NotFound("Campaign not found")
            domain.check_owner(actor.id, str(campaign.advertiser_id))
            domain.check_target_creation(campaign.status)
            channel = await store.get_channel(uow, channel_id)
            if channel is None:
                raise NotFound("Channel not found")
            domain.refuse(self.rules.schedule_refusal(scheduled_at, now))
            await self._check_slot(uow, channel_id, scheduled_at)
            target_id = await store.insert_target(uow, campaign_id=campaign_id, channel_id=channel_id,
                                                  scheduled_at=scheduled_at, price=channel.price_per_post,
                                                  currency=channel.currency)
            await store.audit(uow, actor, "target_created", "target", target_id, to_status="pending")
            target = await store.get_target(uow, target_id)
            await uow.commit()
        return target

    async def list_targets(self, actor: Actor, campaign_id: str, *, limit: int, cursor: str):
        limit, after = page_limit(limit), cursor_key(cursor)
        async with self.db.unit_of_work("list_targets") as uow:
            await campaign_for(uow, actor, campaign_id)
            rows = await store.list_targets(uow, campaign_id=campaign_id, after=after, limit=limit + 1)
        return paginate(rows, limit)

    async def get_target(self, actor: Actor, campaign_id: str, target_id: str):
        async with self.db.unit_of_work("get_target") as uow:
            target = await _target_in(uow, campaign_id, target_id)
            domain.check_owner_or_admin(actor.id, actor.role, str(target.advertiser_id))
        return target

    async def submit_target(self, actor: Actor, campaign_id: str, target_id: str, *, now: dt.datetime):
        """The owner sends a pending (or rejected) target to moderation; a
        resubmission clears the previous verdict."""
        async with self.db.unit_of_work("submit_target") as uow:
            if await store.target_campaign_id(uow, target_id) != campaign_id:
                raise NotFound(TARGET_NOT_FOUND)
            # FOR SHARE: the campaign stays active (not cancelled) until we commit.
            await store.get_campaign(uow, campaign_id, lock="share")
            target = await _target_in(uow, campaign_id, target_id)
            domain.check_owner(actor.id, str(target.advertiser_id))
            domain.check_submit(target_view(target), now, self.rules)
            # The channel's bookings wait for ours: the slot check below is
            # exact, and the exclusion constraint is never the one to refuse.
            await store.lock_channel_bookings(uow, str(target.channel_id))
            await self._check_slot(uow, str(target.channel_id), target.scheduled_at, target_id)
            moved = await store.book_target(uow, target_id, expected=target.status, now=now,
                                            gap_minutes=self.rules.post_gap_minutes)
            if not moved:  # a concurrent change won: refuse as its result dictates
                latest = await _target_in(uow, campaign_id, target_id)
                domain.check_submit(target_view(latest), now, self.rules)
                raise Conflict("Target was changed concurrently; try again")
            await store.audit(uow, actor, "target_submitted", "target", target_id, from_status=target.status,
                              to_status="submitted")
            target = await store.get_target(uow, target_id)
            await uow.commit()
        return target

    async def _check_slot(self, uow: UnitOfWork, channel_id: str, scheduled_at: dt.datetime,
                          target_id: str | None = None) -> None:
        nearby = await store.booked_nearby(uow, channel_id, scheduled_at, self.rules.post_gap_minutes,
                                           domain.BOOKED, target_id)
        domain.refuse(self.rules.slot_refusal(nearby))

    async def cancel_target(self, actor: Actor, campaign_id: str, target_id: str):
        """The owner or an admin cancels a target; an approved one has its post
        job cancelled and its escrow refunded (through the outbox)."""
        async with self.db.unit_of_work("cancel_target") as uow:
            target = await _target_in(uow, campaign_id, target_id, lock=True)
            domain.check_owner_or_admin(actor.id, actor.role, str(target.advertiser_id))
            # A status with no cancel move (published, completed, failed,
            # cancelled) is refused as such first: 400 invalid_transition.
            domain.check_target_cancel_move(target.status)
            # An approved target whose post job left the queue (publishing,
            # or in review) leaves the money to the post's outcome: 409.
            if target.post_job_id is not None:
                job = await jobs.lock_job_of_target(uow, target_id)
                publication.check_cancellable(job.status)
            domain.check_target_cancel(target.status, actor.role)
            # The row is locked: the guard cannot miss.
            await store.move_target(uow, target_id, expected=[target.status], status="cancelled")
            await store.audit(uow, actor, "target_cancelled", "target", target_id, from_status=target.status,
                              to_status="cancelled")
            await cancel_consequences(uow, actor, [(target_id, target.status)])
            target = await store.get_target(uow, target_id)
            await uow.commit()
        return target

    # ---- moderation's reads (admins and the system)
    async def snapshot(self, actor: Actor, target_id: str, *, now: dt.datetime):
        """The target with everything the approve preconditions look at, and
        campaigns' own verdict on them right now."""
        _require_moderation_caller(actor)
        async with self.db.single_statement("read_target_snapshot") as uow:
            target = await steps_store.snapshot(uow, target_id)
        if target is None:
            raise NotFound(TARGET_NOT_FOUND)
        return target, domain.approve_refusal(target_view(target), now, self.rules)

    async def submitted_queue(self, actor: Actor, *, limit: int, cursor: str):
        """Submitted targets, oldest submission first."""
        _require_moderation_caller(actor)
        limit, after = page_limit(limit), cursor_key(cursor)
        async with self.db.unit_of_work("list_submitted_targets") as uow:
            rows = await store.list_submitted(uow, after=after, limit=limit + 1)
            rows, next_cursor = paginate(rows, limit, key=lambda r: store.page_key(r, "submitted_at"))
            creatives = await store.creatives_of(uow, list({r.campaign_id for r in rows}))
        return [(r, creatives[str(r.campaign_id)]) for r in rows], next_cursor

    async def target_audit(self, actor: Actor, *, limit: int, cursor: str):
        """Every target with its post jobs, for adtech verify."""
        _require_moderation_caller(actor)
        limit, after = page_limit(limit), cursor_key(cursor)
        async with self.db.unit_of_work("list_target_audit") as uow:
            rows = await store.target_audit(uow, after=after, limit=limit + 1)
        return paginate(rows, limit)
