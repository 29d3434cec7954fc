"""Publisher inventory: channels, moderated by admins."""
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from adtech.campaigns.v1 import campaigns_pb2 as pb
from gateway import views
from gateway.deps import Admin, CampaignsApi, CurrentUser, Page, Publisher
from gateway.inputs import ChannelId, Currency, Handle, InputModel, Money, Rejection, Title

router = APIRouter(prefix="/api/channels", tags=["channels"])


class NewChannel(InputModel):
    title: Title
    handle: Handle
    price_per_post: Money
    currency: Currency | None = None


@router.post("", status_code=201, response_model=views.Channel)
async def create_channel(body: NewChannel, user: Publisher, campaigns: CampaignsApi) -> views.Channel:
    """A publisher offers a channel; it waits for an admin (status `pending`)."""
    reply = await campaigns.CreateChannel(pb.CreateChannelRequest(
        title=body.title, handle=body.handle, price_per_post=body.price_per_post, currency=body.currency or ""))
    return views.channel(reply.channel)


@router.get("", response_model=views.ChannelPage)
async def list_channels(user: CurrentUser, campaigns: CampaignsApi, page: Page,
                        status: Annotated[Literal["", "pending", "approved", "rejected"],
                                          Query(description="Only channels of this status; all when empty")] = ""
                        ) -> views.ChannelPage:
    """Channels, optionally of one status."""
    reply = await campaigns.ListChannels(pb.ListChannelsRequest(status=status, limit=page.limit, cursor=page.cursor))
    return views.ChannelPage(items=[views.channel(c) for c in reply.channels], next_cursor=views.next_cursor(reply))


@router.get("/{channelId}", response_model=views.Channel)
async def get_channel(channel_id: ChannelId, user: CurrentUser, campaigns: CampaignsApi) -> views.Channel:
    """One channel."""
    reply = await campaigns.GetChannel(pb.GetChannelRequest(channel_id=str(channel_id)))
    return views.channel(reply.channel)


@router.post("/{channelId}/approve", response_model=views.Channel)
async def approve_channel(channel_id: ChannelId, user: Admin, campaigns: CampaignsApi) -> views.Channel:
    """An admin approves a channel: targets may use it from now on."""
    reply = await campaigns.ApproveChannel(pb.ApproveChannelRequest(channel_id=str(channel_id)))
    return views.channel(reply.channel)


@router.post("/{channelId}/reject", response_model=views.Channel)
async def reject_channel(channel_id: ChannelId, body: Rejection, user: Admin, campaigns: CampaignsApi) -> views.Channel:
    """An admin rejects a channel, with a reason."""
    reply = await campaigns.RejectChannel(pb.RejectChannelRequest(channel_id=str(channel_id), reason=body.reason))
    return views.channel(reply.channel)
