"""Channels and campaigns over gRPC: roles, the seed's activation refusals,
the lifecycle actions, pagination and another tenant's reach."""
import datetime as dt

import grpc
import pytest

from adtech.campaigns.v1 import campaigns_pb2 as pb
from common.logs import request_id_var
from common.timestamps import to_timestamp, utcnow
from tests.integration.campaigns.conftest import admin, advertiser, new_id, publisher

BAD_REQUEST = grpc.StatusCode.FAILED_PRECONDITION


async def test_publisher_creates_a_pending_channel(campaigns):
    owner = publisher()
    channel = await campaigns.channel(owner, approve=False, price=1234)
    assert (channel.status, channel.owner_id, channel.price_per_post, channel.currency) == ("pending", owner.id, 1234, "USD")


@pytest.mark.parametrize("role", [advertiser, admin])
async def test_only_publishers_create_channels(campaigns, role):
    refusal = await campaigns.refusal("CreateChannel", pb.CreateChannelRequest(
        title="t", handle="@handle", price_per_post=1), role())
    assert refusal.code == grpc.StatusCode.PERMISSION_DENIED


@pytest.mark.parametrize("fields", [
    {"handle": "no_at_sign"}, {"handle": "@x"}, {"price_per_post": 0}, {"price_per_post": 10**12},
    {"currency": "usd"}, {"title": ""}, {"title": "x" * 201},
])
async def test_bad_channel_input_is_invalid_argument(campaigns, fields):
    request = {"title": "Deals", "handle": "@deals", "price_per_post": 100, **fields}
    refusal = await campaigns.refusal("CreateChannel", pb.CreateChannelRequest(**request), publisher())
    assert refusal.code == grpc.StatusCode.INVALID_ARGUMENT


async def test_admin_approves_and_rejects_pending_channels_once(campaigns):
    approved = await campaigns.channel()
    assert approved.status == "approved"
    pending = await campaigns.channel(approve=False)
    rejected = (await campaigns.call("RejectChannel", pb.RejectChannelRequest(
        channel_id=pending.id, reason="spam"), admin())).channel
    assert (rejected.status, rejected.rejection_reason) == ("rejected", "spam")
    again = await campaigns.refusal("ApproveChannel", pb.ApproveChannelRequest(channel_id=pending.id), admin())
    assert (again.code, again.message) == (BAD_REQUEST, "Channel cannot be approved from status rejected")


async def test_publisher_cannot_approve_a_channel(campaigns):
    channel = await campaigns.channel(approve=False)
    refusal = await campaigns.refusal("ApproveChannel", pb.ApproveChannelRequest(channel_id=channel.id), publisher())
    assert refusal.code == grpc.StatusCode.PERMISSION_DENIED


async def test_any_role_reads_channels_and_filters_by_status(campaigns):
    channel = await campaigns.channel()
    got = (await campaigns.call("GetChannel", pb.GetChannelRequest(channel_id=channel.id), advertiser())).channel
    assert got == channel
    listed = await all_pages(campaigns, "ListChannels", pb.ListChannelsRequest(status="approved", limit=200),
                             "channels", publisher())
    assert channel.id in {c.id for c in listed} and {c.status for c in listed} == {"approved"}


async def test_unknown_and_malformed_ids(campaigns):
    assert (await campaigns.refusal("GetChannel", pb.GetChannelRequest(channel_id=new_id()), admin())).code \
        == grpc.StatusCode.NOT_FOUND
    assert (await campaigns.refusal("GetCampaign", pb.GetCampaignRequest(campaign_id="nope"), admin())).code \
        == grpc.StatusCode.INVALID_ARGUMENT


async def test_advertiser_creates_a_draft_campaign_with_creatives(campaigns):
    owner = advertiser()
    campaign = await campaigns.campaign(owner, creatives=2, activate=False)
    assert (campaign.status, campaign.advertiser_id, len(campaign.creatives)) == ("draft", owner.id, 2)


@pytest.mark.parametrize("request_fields", [
    {"name": ""}, {"name": "n" * 201}, {"name": "ok", "creatives": [pb.NewCreative(text="t" * 4097)]},
    {"name": "ok", "creatives": [pb.NewCreative(text="")]},
])
async def test_bad_campaign_input_is_invalid_argument(campaigns, request_fields):
    refusal = await campaigns.refusal("CreateCampaign", pb.CreateCampaignRequest(**request_fields), advertiser())
    assert refusal.code == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize("role", [publisher, admin])
async def test_only_advertisers_create_campaigns(campaigns, role):
    refusal = await campaigns.refusal("CreateCampaign", pb.CreateCampaignRequest(name="x"), role())
    assert refusal.code == grpc.StatusCode.PERMISSION_DENIED


async def test_activation_refusals_answer_with_the_seed_messages(campaigns):
    owner = advertiser()
    empty = await campaigns.campaign(owner, creatives=0, activate=False)
    assert (await refusal_of(campaigns, empty.id, "activate", owner)).message == "Campaign must have at least one creative"
    backwards = await campaigns.campaign(owner, activate=False, start_at=to_timestamp(utcnow() + dt.timedelta(days=2)),
                                         end_at=to_timestamp(utcnow() + dt.timedelta(days=1)))
    assert (await refusal_of(campaigns, backwards.id, "activate", owner)).message == "startAt must be before endAt"
    ended = await campaigns.campaign(owner, activate=False, end_at=to_timestamp(utcnow() - dt.timedelta(days=1)))
    assert (await refusal_of(campaigns, ended.id, "activate", owner)).message == "endAt must be in the future"
    active = await campaigns.campaign(owner)
    refusal = await refusal_of(campaigns, active.id, "activate", owner)
    assert (refusal.code, refusal.message) == (BAD_REQUEST, "Campaign cannot be activated from status active")


async def test_activation_by_another_advertiser_is_forbidden_and_changes_nothing(campaigns):
    campaign = await campaigns.campaign(advertiser(), activate=False)
    assert (await refusal_of(campaigns, campaign.id, "activate", advertiser())).code == grpc.StatusCode.PERMISSION_DENIED
    assert (await refusal_of(campaigns, campaign.id, "activate", publisher())).code == grpc.StatusCode.PERMISSION_DENIED
    assert await campaigns.scalar("SELECT status FROM campaigns WHERE id = :id", id=campaign.id) == "draft"


async def test_activation_of_an_unknown_campaign_is_not_found(campaigns):
    assert (await refusal_of(campaigns, new_id(), "activate", advertiser())).code == grpc.StatusCode.NOT_FOUND


async def test_owner_pauses_resumes_and_cancels(campaigns):
    owner = advertiser()
    campaign = await campaigns.campaign(owner)
    assert (await campaigns.change(campaign.id, "pause", owner)).status == "paused"
    assert (await campaigns.change(campaign.id, "resume", owner)).status == "active"
    assert (await campaigns.change(campaign.id, "cancel", owner)).status == "cancelled"


async def test_only_admin_completes_or_cancels_a_draft(campaigns):
    owner = advertiser()
    draft = await campaigns.campaign(owner, activate=False)
    assert (await refusal_of(campaigns, draft.id, "cancel", owner)).code == grpc.StatusCode.PERMISSION_DENIED
    assert (await campaigns.change(draft.id, "cancel", admin())).status == "cancelled"
    active = await campaigns.campaign(owner)
    assert (await refusal_of(campaigns, active.id, "complete", owner)).code == grpc.StatusCode.PERMISSION_DENIED
    assert (await campaigns.change(active.id, "complete", admin())).status == "completed"


async def test_unknown_action_is_invalid_argument(campaigns):
    campaign = await campaigns.campaign(advertiser(), activate=False)
    assert (await refusal_of(campaigns, campaign.id, "archive", admin())).code == grpc.StatusCode.INVALID_ARGUMENT


async def test_every_state_change_is_audited_with_actor_and_correlation_id(campaigns):
    owner = advertiser()
    token = request_id_var.set("req-" + new_id())
    try:
        campaign = await campaigns.campaign(owner)
    finally:
        request_id = request_id_var.get()
        request_id_var.reset(token)
    rows = await campaigns.rows("""SELECT actor_id, actor_role, action, from_status, to_status, correlation_id
                                     FROM audit_log WHERE entity_id = :id ORDER BY id""", id=campaign.id)
    assert [(r.action, r.from_status, r.to_status) for r in rows] == [
        ("campaign_created", None, "draft"), ("campaign_activate", "draft", "active")]
    assert {str(r.actor_id) for r in rows} == {owner.id} and {r.correlation_id for r in rows} == {request_id}


async def test_creatives_are_added_in_draft_or_paused_only(campaigns):
    owner = advertiser()
    campaign = await campaigns.campaign(owner)
    request = pb.AddCreativeRequest(campaign_id=campaign.id, text="More", media_url="https://cdn.example/a.png")
    refusal = await campaigns.refusal("AddCreative", request, owner)
    assert refusal.code == BAD_REQUEST
    await campaigns.change(campaign.id, "pause", owner)
    creative = (await campaigns.call("AddCreative", request, owner)).creative
    assert creative.media_url == "https://cdn.example/a.png"
    assert (await campaigns.refusal("AddCreative", request, advertiser())).code == grpc.StatusCode.PERMISSION_DENIED


async def test_advertiser_lists_only_own_campaigns_and_admin_lists_all(campaigns):
    mine, theirs = advertiser(), advertiser()
    own = {(await campaigns.campaign(mine, activate=False)).id for _ in range(3)}
    other = (await campaigns.campaign(theirs, activate=False)).id
    listed = await all_pages(campaigns, "ListCampaigns", pb.ListCampaignsRequest(limit=2), "campaigns", mine)
    assert {c.id for c in listed} == own
    everything = {c.id for c in await all_pages(campaigns, "ListCampaigns", pb.ListCampaignsRequest(limit=200),
                                                "campaigns", admin())}
    assert own | {other} <= everything


async def test_pages_follow_each_other_without_gaps_or_repeats(campaigns):
    owner = advertiser()
    made = [(await campaigns.campaign(owner, activate=False)).id for _ in range(5)]
    first = await campaigns.call("ListCampaigns", pb.ListCampaignsRequest(limit=2), owner)
    assert len(first.campaigns) == 2 and first.next_cursor
    pages = await all_pages(campaigns, "ListCampaigns", pb.ListCampaignsRequest(limit=2), "campaigns", owner)
    assert [c.id for c in pages] == made


@pytest.mark.parametrize("request_fields", [{"limit": 201}, {"limit": -1}, {"cursor": "not-ours"}])
async def test_bad_page_requests_are_invalid_argument(campaigns, request_fields):
    refusal = await campaigns.refusal("ListCampaigns", pb.ListCampaignsRequest(**request_fields), advertiser())
    assert refusal.code == grpc.StatusCode.INVALID_ARGUMENT


async def test_another_advertiser_cannot_read_a_campaign(campaigns):
    campaign = await campaigns.campaign(advertiser())
    refusal = await campaigns.refusal("GetCampaign", pb.GetCampaignRequest(campaign_id=campaign.id), advertiser())
    assert refusal.code == grpc.StatusCode.PERMISSION_DENIED and campaign.name not in refusal.message
    got = (await campaigns.call("GetCampaign", pb.GetCampaignRequest(campaign_id=campaign.id), admin())).campaign
    assert got.id == campaign.id


async def refusal_of(campaigns, campaign_id, action, actor):
    return await campaigns.refusal("ChangeCampaignStatus", pb.ChangeCampaignStatusRequest(
        campaign_id=campaign_id, action=action), actor)


async def all_pages(campaigns, method, request, field, actor) -> list:
    items = []
    while True:
        response = await campaigns.call(method, request, actor)
        items += list(getattr(response, field))
        if not response.next_cursor:
            return items
        request.cursor = response.next_cursor


@pytest.mark.parametrize("media_url", ['https://cdn.example/"a.png', "https://cdn.example/<a>.png",
                                       "https:// cdn.example/a.png", "https://[not-ipv6]/x"])
async def test_a_creative_whose_media_url_does_not_parse_is_invalid_and_not_stored(campaigns, media_url):
    owner = advertiser()
    request = pb.CreateCampaignRequest(name="ok", creatives=[pb.NewCreative(text="t", media_url=media_url)])
    refusal = await campaigns.refusal("CreateCampaign", request, owner)
    assert refusal.code == grpc.StatusCode.INVALID_ARGUMENT and "mediaUrl must be an http(s) URL" in refusal.message
    campaign = await campaigns.campaign(owner)
    await campaigns.change(campaign.id, "pause", owner)
    adding = pb.AddCreativeRequest(campaign_id=campaign.id, text="More", media_url=media_url)
    assert (await campaigns.refusal("AddCreative", adding, owner)).code == grpc.StatusCode.INVALID_ARGUMENT
