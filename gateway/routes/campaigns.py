"""Campaigns and their creatives; status changes go through the campaigns
lifecycle table (the service decides what is allowed)."""
from typing import Annotated

from fastapi import APIRouter
from pydantic import Field

from adtech.campaigns.v1 import campaigns_pb2 as pb
from gateway import views
from gateway.deps import Advertiser, AdvertiserOrAdmin, CampaignsApi, Page
from gateway.inputs import CREATIVES_MAX, CampaignId, CreativeText, InputModel, Instant, MediaUrl, Name

router = APIRouter(prefix="/api/campaigns", tags=["campaigns"])


class NewCreative(InputModel):
    text: CreativeText
    media_url: MediaUrl | None = None


class NewCampaign(InputModel):
    name: Name
    start_at: Instant | None = None
    end_at: Instant | None = None
    creatives: Annotated[list[NewCreative], Field(max_length=CREATIVES_MAX)] = []


@router.post("", status_code=201, response_model=views.Campaign)
async def create_campaign(body: NewCampaign, user: Advertiser, campaigns: CampaignsApi) -> views.Campaign:
    """An advertiser starts a campaign (status `draft`), with or without creatives."""
    reply = await campaigns.CreateCampaign(pb.CreateCampaignRequest(
        name=body.name, start_at=body.start_at, end_at=body.end_at,
        creatives=[pb.NewCreative(text=c.text, media_url=c.media_url or "") for c in body.creatives]))
    return views.campaign(reply.campaign)


@router.get("", response_model=views.CampaignPage)
async def list_campaigns(user: AdvertiserOrAdmin, campaigns: CampaignsApi, page: Page) -> views.CampaignPage:
    """The caller's own campaigns; every campaign for an admin."""
    reply = await campaigns.ListCampaigns(pb.ListCampaignsRequest(limit=page.limit, cursor=page.cursor))
    return views.CampaignPage(items=[views.campaign(c) for c in reply.campaigns], next_cursor=views.next_cursor(reply))


@router.get("/{campaignId}", response_model=views.Campaign)
async def get_campaign(campaign_id: CampaignId, user: AdvertiserOrAdmin, campaigns: CampaignsApi) -> views.Campaign:
    """One campaign with its creatives (owner or admin)."""
    reply = await campaigns.GetCampaign(pb.GetCampaignRequest(campaign_id=str(campaign_id)))
    return views.campaign(reply.campaign)


@router.post("/{campaignId}/creatives", status_code=201, response_model=views.Creative)
async def add_creative(campaign_id: CampaignId, body: NewCreative, user: Advertiser,
                       campaigns: CampaignsApi) -> views.Creative:
    """Adds a creative to a campaign in draft or paused."""
    reply = await campaigns.AddCreative(pb.AddCreativeRequest(
        campaign_id=str(campaign_id), text=body.text, media_url=body.media_url or ""))
    return views.creative(reply.creative)


STATUS_ACTIONS = {
    "activate": "Starts a draft campaign (owner; it needs a creative and sensible dates) → `active`.",
    "pause": "Pauses an active campaign → `paused`; approvals already made stand.",
    "resume": "Resumes a paused campaign → `active`.",
    "cancel": "Cancels the campaign and its open targets; held escrows are refunded → `cancelled`.",
    "complete": "Ends an active campaign (admin) → `completed`.",
}


def _status_route(action: str, doc: str) -> None:
    async def change_status(campaign_id: CampaignId, user: AdvertiserOrAdmin, campaigns: CampaignsApi) -> views.Campaign:
        reply = await campaigns.ChangeCampaignStatus(pb.ChangeCampaignStatusRequest(
            campaign_id=str(campaign_id), action=action))
        return views.campaign(reply.campaign)

    change_status.__doc__ = doc
    router.add_api_route(f"/{{campaignId}}/{action}", change_status, methods=["POST"],
                         response_model=views.Campaign, name=f"{action}_campaign", summary=f"{action.capitalize()} a campaign")


for _action, _doc in STATUS_ACTIONS.items():
    _status_route(_action, _doc)
