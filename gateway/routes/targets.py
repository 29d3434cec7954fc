"""Campaign targets: a post bought in a channel at a scheduled time. Every
route names the campaign; a target of another campaign is 404."""
import uuid

from fastapi import APIRouter

from adtech.campaigns.v1 import campaigns_pb2 as pb
from gateway import views
from gateway.deps import Advertiser, AdvertiserOrAdmin, CampaignsApi, Page
from gateway.inputs import CampaignId, InputModel, Instant, TargetId

router = APIRouter(prefix="/api/campaigns/{campaignId}/targets", tags=["targets"])


class NewTarget(InputModel):
    channel_id: uuid.UUID
    scheduled_at: Instant


@router.post("", status_code=201, response_model=views.Target)
async def create_target(campaign_id: CampaignId, body: NewTarget, user: Advertiser, campaigns: CampaignsApi) -> views.Target:
    """The owner buys a post in a channel (status `pending`, price = the channel's pricePerPost)."""
    reply = await campaigns.CreateTarget(pb.CreateTargetRequest(
        campaign_id=str(campaign_id), channel_id=str(body.channel_id), scheduled_at=body.scheduled_at))
    return views.target(reply.target)


@router.get("", response_model=views.TargetPage)
async def list_targets(campaign_id: CampaignId, user: AdvertiserOrAdmin, campaigns: CampaignsApi,
                       page: Page) -> views.TargetPage:
    """The campaign's targets (owner or admin)."""
    reply = await campaigns.ListTargets(pb.ListTargetsRequest(
        campaign_id=str(campaign_id), limit=page.limit, cursor=page.cursor))
    return views.TargetPage(items=[views.target(t) for t in reply.targets], next_cursor=views.next_cursor(reply))


@router.get("/{targetId}", response_model=views.Target)
async def get_target(campaign_id: CampaignId, target_id: TargetId, user: AdvertiserOrAdmin,
                     campaigns: CampaignsApi) -> views.Target:
    """One target with its post job once approved."""
    reply = await campaigns.GetTarget(pb.GetTargetRequest(campaign_id=str(campaign_id), target_id=str(target_id)))
    return views.target(reply.target)


@router.post("/{targetId}/submit", response_model=views.Target)
async def submit_target(campaign_id: CampaignId, target_id: TargetId, user: Advertiser,
                        campaigns: CampaignsApi) -> views.Target:
    """The owner sends a target to moderation (`submitted`); a rejected one may be resubmitted."""
    reply = await campaigns.SubmitTarget(pb.SubmitTargetRequest(campaign_id=str(campaign_id), target_id=str(target_id)))
    return views.target(reply.target)


@router.post("/{targetId}/cancel", response_model=views.Target)
async def cancel_target(campaign_id: CampaignId, target_id: TargetId, user: AdvertiserOrAdmin,
                        campaigns: CampaignsApi) -> views.Target:
    """Cancels a target (`cancelled`); an approved one has its escrow refunded."""
    reply = await campaigns.CancelTarget(pb.CancelTargetRequest(campaign_id=str(campaign_id), target_id=str(target_id)))
    return views.target(reply.target)
