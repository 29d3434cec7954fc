"""Publisher inventory: channels, moderated by admins."""
import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from adtech.campaigns.v1 import campaigns_pb2 as pb
from gateway import views
from gateway.deps import Admin, CampaignsApi, CurrentUser, Page, Publisher
from gateway.inputs import InputModel, Money, Text

router = APIRouter(prefix="/api/channels", tags=["channels"])


class NewChannel(InputModel):
    title: Text
    handle: Text
    price_per_post: Money
    currency: Text | None = None


class Rejection(InputModel):
    reason: Text


@router.post("", status_code=201, response_model=views.Channel)
async def create_channel(body: NewChannel, user: Publisher, campaigns: CampaignsApi) -> views.Channel:
    """A publisher offers a channel; it waits for an admin (status `pending`)."""
    reply = await campaigns.CreateChannel(pb.CreateChannelRequest(
        title=body.title, handle=body.handle, price_per_post=body.price_per_post, currency=body.currency or ""))
    return views.channel(reply.channel)


@router.get("", response_model=views.ChannelPage)
async def list_channels(user: CurrentUser, campaigns: CampaignsApi, page: Page,
                        status: Annotated[str, Query(max_length=32, pattern=r"^[a-z_]*$",
                                                     description="pending | approved | rejected")] = ""
                        ) -> views.ChannelPage:
    """Channels, optionally of one status."""
    reply = await campaigns.ListChannels(pb.ListChannelsRequest(status=status, limit=page.limit, cursor=page.cursor))
    return views.ChannelPage(items=[views.channel(c) for c in reply.channels], next_cursor=views.next_cursor(reply))


@router.get("/{channel_id}", response_model=views.Channel)
async def get_channel(channel_id: uuid.UUID, user: CurrentUser, campaigns: CampaignsApi) -> views.Channel:
    """One channel."""
    reply = await campaigns.GetChannel(pb.GetChannelRequest(channel_id=str(channel_id)))
    return views.channel(reply.channel)


@router.post("/{channel_id}/approve", response_model=views.Channel)
async def approve_channel(channel_id: uuid.UUID, user: Admin, campaigns: CampaignsApi) -> views.Channel:
    """An admin approves a channel: targets may use it from now on."""
    reply = await campaigns.ApproveChannel(pb.ApproveChannelRequest(channel_id=str(channel_id)))
    return views.channel(reply.channel)


@router.post("/{channel_id}/reject", response_model=views.Channel)
async def reject_channel(channel_id: uuid.UUID, body: Rejection, user: Admin, campaigns: CampaignsApi) -> views.Channel:
    """An admin rejects a channel, with a reason."""
    reply = await campaigns.RejectChannel(pb.RejectChannelRequest(channel_id=str(channel_id), reason=body.reason))
    return views.channel(reply.channel)
