"""The caller's Telegram account (any role): a link to bind one through the
platform's bot, the binding, and unbinding. The account proves who owns a
channel and answers orders in the bot (docs/design.md "A Telegram account
per user")."""
from fastapi import APIRouter, Response

from adtech.campaigns.v1 import campaigns_pb2 as pb
from gateway import views
from gateway.deps import CampaignsApi, CurrentUser

router = APIRouter(prefix="/api/me/telegram", tags=["telegram"])


@router.post("/link", status_code=201, response_model=views.TelegramLink)
async def create_telegram_link(user: CurrentUser, campaigns: CampaignsApi) -> views.TelegramLink:
    """A single-use code and the bot's start link: pressing Start in the bot
    (it sends `/start <code>`) before `expiresAt` binds that Telegram account
    to the caller."""
    reply = await campaigns.CreateTelegramLink(pb.CreateTelegramLinkRequest())
    return views.telegram_link(reply)


@router.get("", response_model=views.LinkedTelegramAccount | views.UnlinkedTelegramAccount)
async def telegram_account(user: CurrentUser,
                           campaigns: CampaignsApi) -> views.LinkedTelegramAccount | views.UnlinkedTelegramAccount:
    """The Telegram account bound to the caller, or `{"linked": false}`."""
    reply = await campaigns.GetTelegramAccount(pb.GetTelegramAccountRequest())
    return views.telegram_account(reply)


@router.delete("", status_code=204, response_class=Response)
async def unlink_telegram_account(user: CurrentUser, campaigns: CampaignsApi) -> Response:
    """Unbinds the caller's Telegram account (nothing bound: nothing to do).
    The caller's channels stay listed, but publish only while their owner's
    account is bound and still an administrator of the chat."""
    await campaigns.UnlinkTelegramAccount(pb.UnlinkTelegramAccountRequest())
    return Response(status_code=204)
