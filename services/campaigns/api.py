"""The campaigns gRPC servicer: proto → one use case → proto. No rules here."""
from collections.abc import Callable
import datetime as dt

from adtech.campaigns.v1 import campaigns_pb2 as pb
from adtech.campaigns.v1 import campaigns_pb2_grpc
from common.auth import parse_uuid, require_actor
from common.timestamps import from_timestamp, to_timestamp, utcnow
from services.campaigns import store
from services.campaigns import publication
from services.campaigns.usecases.accounts import TelegramAccounts
from services.campaigns.usecases.campaigns import Campaigns
from services.campaigns.usecases.consent import Consent
from services.campaigns.usecases.publication import Publication
from services.campaigns.usecases.steps import CampaignSteps
from services.campaigns.usecases.targets import Targets


def _text(value) -> str:
    return "" if value is None else str(value)


def channel_pb(row) -> pb.Channel:
    return pb.Channel(id=str(row.id), owner_id=str(row.owner_id), title=row.title, handle=row.handle,
                      price_per_post=row.price_per_post, currency=row.currency, status=row.status,
                      created_at=to_timestamp(row.created_at), rejection_reason=_text(row.rejection_reason),
                      chat_id=row.chat_id or 0, verified_at=to_timestamp(row.verified_at), auto_accept=row.auto_accept)


def queue_channel_pb(row) -> pb.Channel:
    return pb.Channel(id=str(row.channel_id), owner_id=str(row.publisher_id), title=row.channel_title,
                      handle=row.channel_handle, price_per_post=row.channel_price, currency=row.channel_currency,
                      status=row.channel_status, created_at=to_timestamp(row.channel_created_at),
                      rejection_reason=_text(row.channel_rejection_reason))


def creative_pb(row) -> pb.Creative:
    return pb.Creative(id=str(row.id), text=row.text, media_url=_text(row.media_url))


def campaign_pb(row, creatives) -> pb.Campaign:
    return pb.Campaign(id=str(row.id), advertiser_id=str(row.advertiser_id), name=row.name, status=row.status,
                       start_at=to_timestamp(row.start_at), end_at=to_timestamp(row.end_at),
                       creatives=[creative_pb(c) for c in creatives], created_at=to_timestamp(row.created_at),
                       updated_at=to_timestamp(row.updated_at))


def post_job_pb(row, prefix: str = "") -> pb.PostJob:
    """A post job from a row of its columns (named `prefix` + column; the
    publication columns are optional: the saga's answers carry only id,
    execute_at and status)."""
    columns = row._mapping if hasattr(row, "_mapping") else row._asdict()
    return pb.PostJob(id=str(columns[prefix + "id"]), execute_at=to_timestamp(columns[prefix + "execute_at"]),
                      status=columns[prefix + "status"], message_url=_text(columns.get(prefix + "message_url")),
                      published_at=to_timestamp(columns.get(prefix + "published_at")),
                      verified_at=to_timestamp(columns.get(prefix + "verified_at")),
                      failure_reason=_text(columns.get(prefix + "failure_reason")),
                      accept_by=to_timestamp(columns.get(prefix + "accept_by")),
                      answered_at=to_timestamp(columns.get(prefix + "answered_at")),
                      decline_reason=_text(columns.get(prefix + "decline_reason")))


def post_job_item_pb(row) -> pb.PostJobItem:
    return pb.PostJobItem(target_id=str(row.target_id), campaign_id=str(row.campaign_id), post_job=post_job_pb(row),
                          price=row.price, currency=row.currency)


def target_pb(row) -> pb.Target:
    job = post_job_pb(row, "post_job_") if row.post_job_id is not None else None
    return pb.Target(id=str(row.id), campaign_id=str(row.campaign_id), channel_id=str(row.channel_id),
                     scheduled_at=to_timestamp(row.scheduled_at), price=row.price, currency=row.currency,
                     status=row.status, moderated_by=_text(row.moderated_by),
                     moderated_at=to_timestamp(row.moderated_at), moderation_reason=_text(row.moderation_reason),
                     post_job=job, submitted_at=to_timestamp(row.submitted_at))


def snapshot_pb(row, refusal: tuple[str, str] | None) -> pb.TargetSnapshot:
    code, message = refusal or ("", "")
    return pb.TargetSnapshot(target=target_pb(row), campaign_status=row.campaign_status,
                             creatives_count=row.creatives_count, channel_status=row.channel_status,
                             advertiser_id=str(row.advertiser_id), publisher_id=str(row.publisher_id),
                             reserved_by=_text(row.reserved_by), approve_refusal_code=code,
                             approve_refusal_message=message)


class CampaignsServicer(campaigns_pb2_grpc.CampaignsServiceServicer):
    def __init__(self, campaigns: Campaigns, targets: Targets, steps: CampaignSteps, publication: Publication,
                 accounts: TelegramAccounts, consent: Consent, *, clock: Callable[[], dt.datetime] = utcnow):
        self.campaigns = campaigns
        self.targets = targets
        self.steps = steps
        self.publication = publication
        self.accounts = accounts
        self.consent = consent
        self.clock = clock

    # ---- channels
    async def CreateChannel(self, request, context):
        channel = await self.campaigns.create_channel(require_actor(), title=request.title, handle=request.handle,
                                                      price=request.price_per_post, currency=request.currency,
                                                      auto_accept=request.auto_accept, now=self.clock())
        return pb.CreateChannelResponse(channel=channel_pb(channel))

    async def UpdateChannel(self, request, context):
        channel = await self.campaigns.update_channel(
            require_actor(), parse_uuid(request.channel_id, "channelId"),
            title=request.title if request.HasField("title") else None,
            price=request.price_per_post if request.HasField("price_per_post") else None,
            auto_accept=request.auto_accept if request.HasField("auto_accept") else None)
        return pb.UpdateChannelResponse(channel=channel_pb(channel))

    async def ResubmitChannel(self, request, context):
        channel = await self.campaigns.resubmit_channel(require_actor(), parse_uuid(request.channel_id, "channelId"),
                                                        now=self.clock())
        return pb.ResubmitChannelResponse(channel=channel_pb(channel))

    # ---- Telegram accounts
    async def CreateTelegramLink(self, request, context):
        link = await self.accounts.create_link(require_actor(), now=self.clock())
        return pb.CreateTelegramLinkResponse(code=link.code, start_link=link.start_link,
                                             expires_at=to_timestamp(link.expires_at))

    async def GetTelegramAccount(self, request, context):
        account = await self.accounts.account(require_actor())
        if account is None:
            return pb.GetTelegramAccountResponse(linked=False)
        return pb.GetTelegramAccountResponse(linked=True, telegram_user_id=account.telegram_user_id,
                                             username=_text(account.username),
                                             linked_at=to_timestamp(account.linked_at))

    async def UnlinkTelegramAccount(self, request, context):
        await self.accounts.unlink(require_actor())
        return pb.UnlinkTelegramAccountResponse()

    async def ListChannels(self, request, context):
        rows, cursor = await self.campaigns.list_channels(require_actor(), status=request.status,
                                                          limit=request.limit, cursor=request.cursor)
        return pb.ListChannelsResponse(channels=[channel_pb(r) for r in rows], next_cursor=cursor)

    async def GetChannel(self, request, context):
        channel = await self.campaigns.get_channel(require_actor(), parse_uuid(request.channel_id, "channelId"))
        return pb.GetChannelResponse(channel=channel_pb(channel))

    async def ApproveChannel(self, request, context):
        channel = await self.campaigns.moderate_channel(require_actor(), parse_uuid(request.channel_id, "channelId"),
                                                        approve=True)
        return pb.ApproveChannelResponse(channel=channel_pb(channel))

    async def RejectChannel(self, request, context):
        channel = await self.campaigns.moderate_channel(require_actor(), parse_uuid(request.channel_id, "channelId"),
                                                        approve=False, reason=request.reason)
        return pb.RejectChannelResponse(channel=channel_pb(channel))

    # ---- campaigns
    async def CreateCampaign(self, request, context):
        campaign, creatives = await self.campaigns.create_campaign(
            require_actor(), name=request.name, start_at=from_timestamp(request, "start_at"),
            end_at=from_timestamp(request, "end_at"), creatives=[(c.text, c.media_url) for c in request.creatives])
        return pb.CreateCampaignResponse(campaign=campaign_pb(campaign, creatives))

    async def ListCampaigns(self, request, context):
        items, cursor = await self.campaigns.list_campaigns(require_actor(), limit=request.limit, cursor=request.cursor)
        return pb.ListCampaignsResponse(campaigns=[campaign_pb(r, c) for r, c in items], next_cursor=cursor)

    async def GetCampaign(self, request, context):
        campaign, creatives = await self.campaigns.get_campaign(require_actor(),
                                                                parse_uuid(request.campaign_id, "campaignId"))
        return pb.GetCampaignResponse(campaign=campaign_pb(campaign, creatives))

    async def AddCreative(self, request, context):
        creative = await self.campaigns.add_creative(require_actor(), parse_uuid(request.campaign_id, "campaignId"),
                                                     text=request.text, media_url=request.media_url)
        return pb.AddCreativeResponse(creative=creative_pb(creative))

    async def ChangeCampaignStatus(self, request, context):
        campaign, creatives = await self.campaigns.change_campaign_status(
            require_actor(), parse_uuid(request.campaign_id, "campaignId"), request.action, self.clock())
        return pb.ChangeCampaignStatusResponse(campaign=campaign_pb(campaign, creatives))

    # ---- targets
    async def CreateTarget(self, request, context):
        target = await self.targets.create_target(
            require_actor(), parse_uuid(request.campaign_id, "campaignId"),
            channel_id=parse_uuid(request.channel_id, "channelId"), scheduled_at=from_timestamp(request, "scheduled_at"),
            now=self.clock())
        return pb.CreateTargetResponse(target=target_pb(target))

    async def ListTargets(self, request, context):
        rows, cursor = await self.targets.list_targets(require_actor(), parse_uuid(request.campaign_id, "campaignId"),
                                                       limit=request.limit, cursor=request.cursor)
        return pb.ListTargetsResponse(targets=[target_pb(r) for r in rows], next_cursor=cursor)

    async def GetTarget(self, request, context):
        target = await self.targets.get_target(require_actor(), *self._path(request))
        return pb.GetTargetResponse(target=target_pb(target))

    async def SubmitTarget(self, request, context):
        target = await self.targets.submit_target(require_actor(), *self._path(request), now=self.clock())
        return pb.SubmitTargetResponse(target=target_pb(target))

    async def CancelTarget(self, request, context):
        target = await self.targets.cancel_target(require_actor(), *self._path(request))
        return pb.CancelTargetResponse(target=target_pb(target))

    @staticmethod
    def _path(request) -> tuple[str, str]:
        return parse_uuid(request.campaign_id, "campaignId"), parse_uuid(request.target_id, "targetId")

    # ---- moderation's view and the approve saga's steps
    async def GetTargetSnapshot(self, request, context):
        row, refusal = await self.targets.snapshot(require_actor(), parse_uuid(request.target_id, "targetId"),
                                                   now=self.clock())
        return pb.GetTargetSnapshotResponse(snapshot=snapshot_pb(row, refusal))

    async def ListSubmittedTargets(self, request, context):
        items, cursor = await self.targets.submitted_queue(require_actor(), limit=request.limit, cursor=request.cursor)
        return pb.ListSubmittedTargetsResponse(next_cursor=cursor, items=[pb.QueueItem(
            target=target_pb(r), channel=queue_channel_pb(r), creatives=[creative_pb(c) for c in creatives],
            campaign_name=r.campaign_name, advertiser_id=str(r.advertiser_id)) for r, creatives in items])

    async def ReserveTarget(self, request, context):
        row = await self.steps.reserve(require_actor(), *self._step(request), now=self.clock())
        return pb.ReserveTargetResponse(snapshot=snapshot_pb(row, None))

    async def ReleaseTarget(self, request, context):
        released = await self.steps.release(require_actor(), *self._step(request))
        return pb.ReleaseTargetResponse(released=released)

    async def ApproveTarget(self, request, context):
        row, job = await self.steps.approve(require_actor(), *self._step(request),
                                            moderator_id=parse_uuid(request.moderator_id, "moderatorId"),
                                            escrow_id=parse_uuid(request.escrow_id, "escrowId"), now=self.clock())
        return pb.ApproveTargetResponse(target=target_pb(row), post_job=post_job_pb(job) if job else None)

    async def RejectTarget(self, request, context):
        decision_id = parse_uuid(request.decision_id, "decisionId") if request.decision_id else store.new_id()
        row = await self.steps.reject(require_actor(), parse_uuid(request.target_id, "targetId"), decision_id,
                                      moderator_id=parse_uuid(request.moderator_id, "moderatorId"),
                                      reason=request.reason, now=self.clock())
        return pb.RejectTargetResponse(target=target_pb(row))

    @staticmethod
    def _step(request) -> tuple[str, str]:
        return parse_uuid(request.target_id, "targetId"), parse_uuid(request.decision_id, "decisionId")

    async def ListTargetAudit(self, request, context):
        rows, cursor = await self.targets.target_audit(require_actor(), limit=request.limit, cursor=request.cursor)
        return pb.ListTargetAuditResponse(next_cursor=cursor, targets=[pb.TargetAudit(
            target_id=str(r.id), status=r.status, post_jobs=r.post_jobs, advertiser_id=str(r.advertiser_id),
            reserved_by=_text(r.reserved_by), posted_chat_id=r.posted_chat_id or 0,
            listing_chat_id=r.listing_chat_id or 0, owner_telegram_user_id=r.owner_telegram_user_id or 0,
            posted_since_ownership=r.posted_since_ownership) for r in rows])

    # ---- publication
    async def ListPostJobs(self, request, context):
        actor = require_actor()
        if request.channel_id:
            rows, cursor = await self.publication.channel_posts(
                actor, parse_uuid(request.channel_id, "channelId"), status=request.status, limit=request.limit,
                cursor=request.cursor)
        else:
            rows, cursor = await self.publication.post_jobs(actor, status=request.status, limit=request.limit,
                                                            cursor=request.cursor)
        return pb.ListPostJobsResponse(items=[post_job_item_pb(r) for r in rows], next_cursor=cursor)

    async def ResolvePostJob(self, request, context):
        resolution = publication.valid_resolution(request.outcome, request.message_url, request.reason)
        row = await self.publication.resolve(require_actor(), parse_uuid(request.post_job_id, "postJobId"), resolution)
        return pb.ResolvePostJobResponse(post_job=post_job_pb(row))

    async def AcceptPostJob(self, request, context):
        row = await self.consent.accept(require_actor(), parse_uuid(request.post_job_id, "postJobId"), now=self.clock())
        return pb.AcceptPostJobResponse(post_job=post_job_pb(row))

    async def DeclinePostJob(self, request, context):
        row = await self.consent.decline(require_actor(), parse_uuid(request.post_job_id, "postJobId"),
                                         reason=request.reason, now=self.clock())
        return pb.DeclinePostJobResponse(post_job=post_job_pb(row))
