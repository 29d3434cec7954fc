"""Campaigns' use cases as advertisers, publishers and admins act: one unit
of work each, named for the business act. Rules come from `domain`, rows
from `store`; the clock is read by the caller and passed in."""
import datetime as dt

from common.auth import Actor
from common.db import Database, DatabaseError, is_unique_violation
from common.errors import Conflict, Forbidden, InvalidInput, NotFound, PreconditionFailed
from common.pagination import page_limit
from common.reasons import Reason
from services.campaigns import domain, store
from services.campaigns.telegram import TelegramChannels
from services.campaigns.usecases.ownership import prove_ownership
from services.campaigns.usecases.shared import campaign_for, cascade_cancellation, cursor_key, paginate

MAX_CREATIVES_PER_REQUEST = 50


class Campaigns:
    """Channels and campaigns as publishers, advertisers and admins act on them."""

    def __init__(self, db: Database, channels: TelegramChannels, *, currency: str = "USD"):
        self.db = db
        self.channels = channels
        self.currency = currency  # the platform's one currency

    # ---- channels
    async def create_channel(self, actor: Actor, *, title: str, handle: str, price: int, currency: str,
                             auto_accept: bool, now: dt.datetime):
        """A publisher lists a channel it administers in Telegram; it waits
        for an admin's approval. One live listing per chat and per handle."""
        actor.require("publisher")
        title = domain.valid_text(title, "title", domain.TITLE_MAX)
        handle, price = domain.valid_handle(handle), domain.valid_price(price)
        currency = domain.valid_currency(currency, self.currency)
        owned = await prove_ownership(self.db, self.channels, actor.id, handle)
        async with self.db.unit_of_work("list_channel") as uow:
            try:
                channel = await store.insert_channel(uow, owner_id=actor.id, title=title, handle=handle, price=price,
                                                     currency=currency, chat_id=owned.chat_id, verified_at=now,
                                                     auto_accept=auto_accept)
            except DatabaseError as error:
                if any(is_unique_violation(error, name) for name in store.LIVE_LISTING_INDEXES):
                    raise domain.already_listed(handle) from None
                raise
            await store.audit(uow, actor, "channel_created", "channel", channel.id, to_status="pending",
                              detail={"chat_id": owned.chat_id, "telegram_user_id": owned.telegram_user_id})
            await uow.commit()
        return channel

    async def update_channel(self, actor: Actor, channel_id: str, *, title: str | None, price: int | None,
                             auto_accept: bool | None):
        """The owner changes the title, the price (for targets created
        from now on) or whether approved posts need its answer."""
        if title is None and price is None and auto_accept is None:
            raise InvalidInput("nothing to change: give title, pricePerPost or autoAccept")
        title = None if title is None else domain.valid_text(title, "title", domain.TITLE_MAX)
        price = None if price is None else domain.valid_price(price)
        async with self.db.unit_of_work("update_channel") as uow:
            current = await store.get_channel(uow, channel_id)
            if current is None:
                raise NotFound("Channel not found")
            domain.check_channel_owner(actor.id, str(current.owner_id))
            channel = await store.update_channel(uow, channel_id, title=title, price=price, auto_accept=auto_accept)
            await store.audit(uow, actor, "channel_updated", "channel", channel_id, detail={
                key: value for key, value in (("title", title), ("price_per_post", price),
                                              ("auto_accept", auto_accept)) if value is not None})
            await uow.commit()
        return channel

    async def resubmit_channel(self, actor: Actor, channel_id: str, *, now: dt.datetime):
        """The owner sends a rejected or suspended listing back to the
        admins, proving ownership again."""
        async with self.db.single_statement("read_channel") as uow:
            found = await store.get_channel(uow, channel_id)
        if found is None:
            raise NotFound("Channel not found")
        domain.check_channel_owner(actor.id, str(found.owner_id))
        domain.check_resubmit(found.status)
        owned = await prove_ownership(self.db, self.channels, actor.id, found.handle)
        async with self.db.unit_of_work("resubmit_channel") as uow:
            try:
                channel = await store.resubmit_channel(uow, channel_id, expected=found.status, chat_id=owned.chat_id,
                                                       verified_at=now)
            except DatabaseError as error:
                if any(is_unique_violation(error, name) for name in store.LIVE_LISTING_INDEXES):
                    raise domain.already_listed(found.handle) from None
                raise
            if channel is None:
                latest = await store.get_channel(uow, channel_id)
                domain.check_resubmit(latest.status)
                raise Conflict("Channel was changed concurrently; try again")
            await store.audit(uow, actor, "channel_resubmitted", "channel", channel_id, from_status=found.status,
                              to_status="pending", detail={"chat_id": owned.chat_id,
                                                           "telegram_user_id": owned.telegram_user_id})
            await uow.commit()
        return channel

    async def list_channels(self, actor: Actor, *, status: str, limit: int, cursor: str):
        status_filter, limit, after = domain.valid_channel_status_filter(status), page_limit(limit), cursor_key(cursor)
        async with self.db.unit_of_work("list_channels") as uow:
            rows = await store.list_channels(uow, status=status_filter, after=after, limit=limit + 1)
        return paginate(rows, limit)

    async def get_channel(self, actor: Actor, channel_id: str):
        async with self.db.unit_of_work("get_channel") as uow:
            channel = await store.get_channel(uow, channel_id)
        if channel is None:
            raise NotFound("Channel not found")
        return channel

    async def moderate_channel(self, actor: Actor, channel_id: str, *, approve: bool, reason: str = ""):
        """An admin approves or rejects a pending channel, or rejects a
        suspended one (whose owner may never prove the chat theirs again: the
        rejection frees the chat for a new listing). Approving asks Telegram
        again, before the change, that the owner still administers the chat
        and the bot can post there."""
        actor.require("admin")
        status = "approved" if approve else "rejected"
        reason_text = None if approve else domain.valid_text(reason, "reason", domain.REASON_MAX)
        if approve:
            async with self.db.single_statement("read_channel") as uow:
                found = await store.get_channel(uow, channel_id)
            if found is None:
                raise NotFound("Channel not found")
            if found.status == "pending":
                proven = (await prove_ownership(self.db, self.channels, str(found.owner_id), found.handle)).chat_id
                if proven != found.chat_id:
                    raise PreconditionFailed(f"{found.handle} is another Telegram chat now than when it was listed;"
                                             " its owner must list it again", code=Reason.INVALID_TRANSITION)
        async with self.db.unit_of_work("approve_channel" if approve else "reject_channel") as uow:
            current = await store.get_channel(uow, channel_id)
            if current is None:
                raise NotFound("Channel not found")
            sources = domain.moved_from(domain.CHANNEL_MOVES, status, actor.role)
            channel = await store.moderate_channel(uow, channel_id, expected=sources, status=status,
                                                   reason=reason_text)
            if channel is None:
                raise PreconditionFailed(f"Channel cannot be {status} from status {current.status}",
                                         code=Reason.INVALID_TRANSITION)
            await store.audit(uow, actor, f"channel_{status}", "channel", channel_id, from_status=current.status,
                              to_status=status)
            await uow.commit()
        return channel

    # ---- campaigns
    async def create_campaign(self, actor: Actor, *, name: str, start_at, end_at, creatives: list[tuple[str, str]]):
        """An advertiser starts a draft campaign, optionally with creatives."""
        actor.require("advertiser")
        name = domain.valid_text(name, "name", domain.NAME_MAX)
        domain.valid_time(start_at, "startAt")
        domain.valid_time(end_at, "endAt")
        if len(creatives) > MAX_CREATIVES_PER_REQUEST:
            raise InvalidInput(f"at most {MAX_CREATIVES_PER_REQUEST} creatives per request")
        checked = [(domain.valid_text(text, "creative text", domain.CREATIVE_TEXT_MAX), domain.valid_media_url(url))
                   for text, url in creatives]
        async with self.db.unit_of_work("create_campaign") as uow:
            campaign = await store.insert_campaign(uow, advertiser_id=actor.id, name=name, start_at=start_at, end_at=end_at)
            made = [await store.insert_creative(uow, campaign.id, text, url) for text, url in checked]
            await store.audit(uow, actor, "campaign_created", "campaign", campaign.id, to_status="draft")
            await uow.commit()
        return campaign, made

    async def list_campaigns(self, actor: Actor, *, limit: int, cursor: str):
        """Own campaigns; an admin (or the system) sees all."""
        if actor.role not in ("advertiser", "admin", "system"):
            raise Forbidden(f"role {actor.role} may not do this")
        limit, after = page_limit(limit), cursor_key(cursor)
        owner = None if actor.role in ("admin", "system") else actor.id
        async with self.db.unit_of_work("list_campaigns") as uow:
            rows = await store.list_campaigns(uow, advertiser_id=owner, after=after, limit=limit + 1)
            rows, next_cursor = paginate(rows, limit)
            creatives = await store.creatives_of(uow, [r.id for r in rows])
        return [(r, creatives[str(r.id)]) for r in rows], next_cursor

    async def get_campaign(self, actor: Actor, campaign_id: str):
        async with self.db.unit_of_work("get_campaign") as uow:
            campaign = await campaign_for(uow, actor, campaign_id)
            creatives = await store.creatives_of(uow, [campaign.id])
        return campaign, creatives[str(campaign.id)]

    async def add_creative(self, actor: Actor, campaign_id: str, *, text: str, media_url: str):
        """The owner (or an admin) adds a creative while the campaign is a draft or paused."""
        text, url = domain.valid_text(text, "text", domain.CREATIVE_TEXT_MAX), domain.valid_media_url(media_url)
        async with self.db.unit_of_work("add_creative") as uow:
            # FOR SHARE: the campaign cannot leave draft/paused until we commit.
            campaign = await campaign_for(uow, actor, campaign_id, lock="share")
            if campaign.status not in domain.CREATIVE_EDITABLE:
                raise PreconditionFailed(
                    f"Creatives can only be added to a draft or paused campaign (current status: {campaign.status})",
                    code=Reason.INVALID_TRANSITION)
            creative = await store.insert_creative(uow, campaign_id, text, url)
            await store.audit(uow, actor, "creative_added", "campaign", campaign_id, detail={"creative_id": str(creative.id)})
            await uow.commit()
        return creative

    async def change_campaign_status(self, actor: Actor, campaign_id: str, action: str, now: dt.datetime):
        """activate | pause | resume | cancel | complete, as the lifecycle table
        allows. Cancelling cascades to the campaign's open targets and queues a
        refund for each one that may hold money. Completing leaves no money
        behind: it is refused while a target is being approved or approved
        and not yet published (its price is in escrow), and cancels the
        targets that never booked (pending, submitted, rejected)."""
        async with self.db.unit_of_work(f"{action}_campaign") as uow:
            campaign = await campaign_for(uow, actor, campaign_id)
            view = domain.CampaignView(campaign.status, campaign.creatives_count, campaign.start_at, campaign.end_at)
            wanted = domain.plan_campaign_change(action, view, actor.role, now)
            moved = await store.move_campaign(uow, campaign_id, expected=campaign.status, status=wanted)
            if moved is None:  # a concurrent change won: judge again against what it left
                latest = await store.get_campaign(uow, campaign_id)
                view = domain.CampaignView(latest.status, latest.creatives_count, latest.start_at, latest.end_at)
                domain.plan_campaign_change(action, view, actor.role, now)
                raise Conflict("Campaign was changed concurrently; try again")
            await store.audit(uow, actor, f"campaign_{action}", "campaign", campaign_id, from_status=campaign.status,
                              to_status=wanted)
            if wanted == "cancelled":
                await cascade_cancellation(uow, actor, campaign_id, domain.CASCADE_CANCELLABLE)
            if wanted == "completed":
                # The campaign row is ours now: a reserve (which locks it FOR
                # SHARE) either committed before, and is counted, or will find
                # the campaign completed and refuse.
                held = await store.count_open_targets(uow, campaign_id, domain.HOLDING_ESCROW)
                if held:
                    raise Conflict(f"The campaign has {held} target(s) being approved or approved and not yet "
                                   "published; cancel them or wait for publication before completing it",
                                   code=Reason.CAMPAIGN_HAS_OPEN_TARGETS)
                await cascade_cancellation(uow, actor, campaign_id, domain.UNBOOKED_ON_COMPLETE)
            creatives = await store.creatives_of(uow, [campaign_id])
            await uow.commit()
        return moved, creatives[campaign_id]
