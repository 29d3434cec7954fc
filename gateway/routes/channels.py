"""Publisher inventory: channels, listed by an owner Telegram vouches for,
moderated by admins."""
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import ConfigDict, model_validator

from adtech.campaigns.v1 import campaigns_pb2 as pb
from gateway import views
from gateway.deps import Admin, CampaignsApi, CurrentUser, Page, Publisher
from gateway.inputs import ChannelId, Currency, Flag, Handle, InputModel, Money, Rejection, Title

router = APIRouter(prefix="/api/channels", tags=["channels"])

ChannelStatus = Annotated[Literal["", "pending", "approved", "rejected", "suspended"],
                          Query(description="Only channels of this status; all when empty")]


class NewChannel(InputModel):
    title: Title
    handle: Handle
    price_per_post: Money
    currency: Currency | None = None
    auto_accept: Flag = False


def _one_change_at_least(schema: dict) -> None:
    """The document refuses what the gateway refuses: `{}`, or only nulls."""
    schema["anyOf"] = [{"required": [name], "properties": {name: {"not": {"type": "null"}}}}
                       for name in schema["properties"]]


class ChannelChanges(InputModel):
    """What the owner changes: a field absent or null stays as it is; at
    least one must be given."""
    model_config = ConfigDict(json_schema_extra=_one_change_at_least)
    title: Title | None = None
    price_per_post: Money | None = None
    auto_accept: Flag | None = None

    @model_validator(mode="after")
    def _changes_something(self) -> "ChannelChanges":
        if not self.changes():
            names = ", ".join(field.alias for field in type(self).model_fields.values())
            raise ValueError(f"give at least one of {names} (not null)")
        return self

    def changes(self) -> dict:
        """The fields given, under their names in UpdateChannelRequest (the same as here)."""
        return {name: value for name, value in self if value is not None}


@router.post("", status_code=201, response_model=views.Channel)
async def create_channel(body: NewChannel, user: Publisher, campaigns: CampaignsApi) -> views.Channel:
    """A publisher lists a channel whose Telegram chat the publisher's bound
    account administers, and where the bot can post; it waits for an admin
    (status `pending`)."""
    reply = await campaigns.CreateChannel(pb.CreateChannelRequest(
        title=body.title, handle=body.handle, price_per_post=body.price_per_post, currency=body.currency or "",
        auto_accept=body.auto_accept))
    return views.channel(reply.channel)


@router.get("", response_model=views.ChannelPage)
async def list_channels(user: CurrentUser, campaigns: CampaignsApi, page: Page,
                        status: ChannelStatus = "") -> views.ChannelPage:
    """Channels, optionally of one status."""
    reply = await campaigns.ListChannels(pb.ListChannelsRequest(status=status, limit=page.limit, cursor=page.cursor))
    return views.ChannelPage(items=[views.channel(c) for c in reply.channels], next_cursor=views.next_cursor(reply))


@router.get("/{channelId}", response_model=views.Channel)
async def get_channel(channel_id: ChannelId, user: CurrentUser, campaigns: CampaignsApi) -> views.Channel:
    """One channel."""
    reply = await campaigns.GetChannel(pb.GetChannelRequest(channel_id=str(channel_id)))
    return views.channel(reply.channel)


@router.patch("/{channelId}", response_model=views.Channel)
async def update_channel(channel_id: ChannelId, body: ChannelChanges, user: Publisher,
                         campaigns: CampaignsApi) -> views.Channel:
    """The owner changes the title, the price (for targets created from now
    on) or auto-accept (for approvals from now on)."""
    reply = await campaigns.UpdateChannel(pb.UpdateChannelRequest(channel_id=str(channel_id), **body.changes()))
    return views.channel(reply.channel)


@router.post("/{channelId}/resubmit", response_model=views.Channel)
async def resubmit_channel(channel_id: ChannelId, user: Publisher, campaigns: CampaignsApi) -> views.Channel:
    """The owner sends a rejected or suspended channel back to moderation
    (`pending`), proving ownership through Telegram again."""
    reply = await campaigns.ResubmitChannel(pb.ResubmitChannelRequest(channel_id=str(channel_id)))
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
