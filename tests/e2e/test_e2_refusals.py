"""E.2 of the seed's test plan: every refusal of API.md's activation,
submission and approve rules, auth, routes and malformed input, each with the
exact error body and each leaving nothing behind (no state change, no
escrow, no post job, no balance change)."""
import asyncio
import datetime as dt
import time
import uuid

import jwt
import pytest

from tests.e2e.client import Flow, assert_error, from_now, mint

# ---- activation --------------------------------------------------------------


async def _activate(api, user, campaign):
    return await api.call("POST", f"/api/campaigns/{campaign['id']}/activate", user)


async def _status_of(api, campaign) -> str:
    return (await api.ok("GET", f"/api/campaigns/{campaign['id']}", api.admin))["status"]


async def test_activating_an_unknown_campaign_is_404(api):
    assert_error(await _activate(api, api.user("advertiser"), {"id": str(uuid.uuid4())}), 404)


async def test_activating_another_advertisers_campaign_is_403_and_leaves_it_draft(api):
    campaign = await api.campaign(api.user("advertiser"), activate=False)

    assert_error(await _activate(api, api.user("advertiser"), campaign), 403)
    assert await _status_of(api, campaign) == "draft"


@pytest.mark.parametrize("status", ["active", "paused", "cancelled"])
async def test_activating_a_campaign_not_in_draft_is_refused_naming_its_status(api, status):
    advertiser = api.user("advertiser")
    campaign = await api.campaign(advertiser)
    if status != "active":
        await api.ok("POST", f"/api/campaigns/{campaign['id']}/{'pause' if status == 'paused' else 'cancel'}", advertiser)

    assert_error(await _activate(api, advertiser, campaign), 400, f"Campaign cannot be activated from status {status}")
    assert await _status_of(api, campaign) == status


async def test_activating_a_campaign_without_creatives_is_refused(api):
    advertiser = api.user("advertiser")
    campaign = await api.campaign(advertiser, creatives=False, activate=False)

    assert_error(await _activate(api, advertiser, campaign), 400, "Campaign must have at least one creative")
    assert await _status_of(api, campaign) == "draft"


async def test_activating_a_campaign_starting_after_it_ends_is_refused(api):
    advertiser = api.user("advertiser")
    campaign = await api.campaign(advertiser, activate=False, startAt=from_now(days=3), endAt=from_now(days=2))

    assert_error(await _activate(api, advertiser, campaign), 400, "startAt must be before endAt")
    assert await _status_of(api, campaign) == "draft"


async def test_activating_a_campaign_that_has_ended_is_refused(api):
    advertiser = api.user("advertiser")
    ends = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=1.5)
    campaign = await api.campaign(advertiser, activate=False, endAt=ends.isoformat().replace("+00:00", "Z"))
    await asyncio.sleep(max(0.0, (ends - dt.datetime.now(dt.timezone.utc)).total_seconds()) + 0.2)

    assert_error(await _activate(api, advertiser, campaign), 400, "endAt must be in the future")
    assert await _status_of(api, campaign) == "draft"


# ---- submission ----------------------------------------------------------------

NOT_FOUND = "Campaign target not found"


async def _submit(api, user, campaign_id: str, target_id: str):
    return await api.call("POST", f"/api/campaigns/{campaign_id}/targets/{target_id}/submit", user)


async def test_submitting_an_unknown_target_is_404(api):
    flow = await api.flow(submitted=False, funds=0)

    assert_error(await _submit(api, flow.advertiser, flow.campaign["id"], str(uuid.uuid4())), 404, NOT_FOUND)


async def test_submitting_a_target_through_another_campaign_of_the_owner_is_404_and_leaves_it_pending(api):
    flow = await api.flow(submitted=False, funds=0)
    other = await api.campaign(flow.advertiser)

    assert_error(await _submit(api, flow.advertiser, other["id"], flow.target_id), 404, NOT_FOUND)
    assert (await api.get_target(flow))["status"] == "pending"


async def test_submitting_a_target_under_an_unknown_campaign_is_404(api):
    flow = await api.flow(submitted=False, funds=0)

    assert_error(await _submit(api, flow.advertiser, str(uuid.uuid4()), flow.target_id), 404, NOT_FOUND)
    assert (await api.get_target(flow))["status"] == "pending"


async def test_submitting_another_advertisers_target_is_403_and_leaves_it_pending(api):
    flow = await api.flow(submitted=False, funds=0)

    assert_error(await _submit(api, api.user("advertiser"), flow.campaign["id"], flow.target_id), 403)
    assert (await api.get_target(flow))["status"] == "pending"


@pytest.mark.parametrize("status", ["draft", "paused"])
async def test_submitting_while_the_campaign_is_not_active_is_refused_naming_its_status(api, status):
    advertiser = api.user("advertiser")
    _, channel = await api.approved_channel()
    campaign = await api.campaign(advertiser, activate=status != "draft")
    target = await api.add_target(advertiser, campaign, channel)
    if status == "paused":
        await api.ok("POST", f"/api/campaigns/{campaign['id']}/pause", advertiser)

    assert_error(await _submit(api, advertiser, campaign["id"], target["id"]), 400,
                 f"Campaign must be active to submit targets (current status: {status})")
    assert (await api.get_target(target))["status"] == "pending"


async def test_submitting_a_submitted_target_again_is_refused_naming_its_status(api):
    flow = await api.flow(funds=0)

    assert_error(await _submit(api, flow.advertiser, flow.campaign["id"], flow.target_id), 400,
                 "Target cannot be submitted from status submitted")


async def test_submitting_a_target_on_a_channel_not_approved_is_refused(api):
    advertiser, publisher = api.user("advertiser"), api.user("publisher")
    name = f"@e2e_{uuid.uuid4().hex[:12]}"
    await api.own_channel(publisher, name)
    channel = await api.ok("POST", "/api/channels", publisher, 201,
                           json={"title": "Unvetted", "handle": name, "pricePerPost": 900})
    campaign = await api.campaign(advertiser)
    target = await api.add_target(advertiser, campaign, channel)

    assert_error(await _submit(api, advertiser, campaign["id"], target["id"]), 400, "Channel must be approved")
    assert (await api.get_target(target))["status"] == "pending"


async def test_a_target_scheduled_within_the_lead_time_is_refused_at_create_naming_the_lead(api):
    advertiser = api.user("advertiser")
    _, channel = await api.approved_channel()
    campaign = await api.campaign(advertiser)
    response = await api.call("POST", f"/api/campaigns/{campaign['id']}/targets", advertiser,
                              json={"channelId": channel["id"], "scheduledAt": from_now(milliseconds=api.min_lead_ms // 2)})
    assert_error(response, 400, f"scheduledAt must be in the future: at least {api.min_lead_ms / 1000:g} s ahead of now")
    assert response.json()["error"]["code"] == "scheduled_too_soon"
    listed = await api.ok("GET", f"/api/campaigns/{campaign['id']}/targets", advertiser)
    assert listed["items"] == []


# "Campaign has no creatives" cannot be reached over HTTP: only an active
# campaign takes submissions, activation needs a creative, and no route
# removes one.


# ---- approve -------------------------------------------------------------------


async def test_approving_a_target_not_submitted_is_400_and_holds_nothing(api):
    flow = await api.flow(submitted=False)
    before = await api.wallet(flow.advertiser)

    assert_error(await api.approve(flow.target_id), 400, "Target cannot be approved from status pending",
                 "target_not_submitted")
    await api.assert_nothing_held(flow, before)
    assert (await api.get_target(flow))["status"] == "pending"
    assert_error(await api.decision(flow.target_id), 404)


async def test_approving_while_the_campaign_is_paused_is_400_and_holds_nothing(api):
    flow = await api.flow()
    await api.ok("POST", f"/api/campaigns/{flow.campaign['id']}/pause", flow.advertiser)
    before = await api.wallet(flow.advertiser)

    assert_error(await api.approve(flow.target_id), 400,
                 f"Campaign {flow.campaign['id']} must be active (current: paused)", "campaign_not_active")
    await api.assert_nothing_held(flow, before)
    assert (await api.get_target(flow))["status"] == "submitted"


async def test_approving_a_target_whose_time_came_within_the_lead_is_400_and_holds_nothing(api):
    advertiser = api.user("advertiser")
    publisher, channel = await api.approved_channel()
    await api.deposit(advertiser, 10_000)
    campaign = await api.campaign(advertiser)
    target = await api.add_target(advertiser, campaign, channel, from_now(milliseconds=api.min_lead_ms + 1_500))
    target = await api.submit(advertiser, target)
    await asyncio.sleep(2.0)  # now scheduledAt is less than the lead ahead
    flow = Flow(advertiser, publisher, channel, campaign, target)
    before = await api.wallet(advertiser)

    assert_error(await api.approve(target["id"]), 400,
                 f"scheduledAt must be in the future: at least {api.min_lead_ms / 1000:g} s ahead of now",
                 "scheduled_too_soon")
    await api.assert_nothing_held(flow, before)


# "Channel must be approved" cannot be reached at approve time over HTTP: a
# target is submitted only on an approved channel, and an approved channel
# cannot be rejected afterwards ("Channel cannot be rejected from status approved").


async def test_approving_beyond_the_wallet_is_402_insufficient_funds_and_holds_nothing(api):
    flow = await api.flow(price=5_000, funds=4_999)
    before = await api.wallet(flow.advertiser)

    assert_error(await api.approve(flow.target_id), 402, code="insufficient_funds")
    await api.assert_nothing_held(flow, before)
    assert (await api.get_target(flow))["status"] == "submitted"


async def test_after_insufficient_funds_a_deposit_lets_the_next_approve_succeed(api):
    flow = await api.flow(price=5_000, funds=4_999)
    assert_error(await api.approve(flow.target_id), 402, code="insufficient_funds")
    await api.deposit(flow.advertiser, 1)

    response = await api.approve(flow.target_id)

    assert response.status_code == 200, response.text
    assert await api.wallet(flow.advertiser) == {"userId": flow.advertiser.id, "currency": "USD", "balance": 0, "held": 5_000, "pendingPayout": 0}


async def test_approving_an_unknown_target_is_404(api):
    assert_error(await api.approve(str(uuid.uuid4())), 404, "Campaign target not found", "not_found")


@pytest.mark.parametrize("role", ["advertiser", "publisher"])
async def test_approving_as_a_non_admin_is_403_and_holds_nothing(api, role):
    flow = await api.flow()
    before = await api.wallet(flow.advertiser)
    user = flow.advertiser if role == "advertiser" else flow.publisher

    assert_error(await api.approve(flow.target_id, user), 403, f"role {role} may not do this", "forbidden")
    await api.assert_nothing_held(flow, before)
    assert (await api.get_target(flow))["status"] == "submitted"


async def test_rejecting_a_target_not_submitted_is_refused_and_changes_nothing(api):
    flow = await api.flow(submitted=False)

    response = await api.call("POST", f"/api/moderation/targets/{flow.target_id}/reject", api.admin,
                              json={"reason": "off-brand"})

    assert_error(response, 400, "Target cannot be rejected from status pending", "invalid_transition")
    assert (await api.get_target(flow))["status"] == "pending"


async def test_a_rejected_target_holds_nothing_and_cannot_be_approved(api):
    flow = await api.flow()
    before = await api.wallet(flow.advertiser)
    rejected = await api.ok("POST", f"/api/moderation/targets/{flow.target_id}/reject", api.admin,
                            json={"reason": "off-brand"})
    assert (rejected["status"], rejected["moderationReason"], rejected["moderatedBy"]) == \
        ("rejected", "off-brand", api.admin.id)

    assert_error(await api.approve(flow.target_id), 400, "Target cannot be approved from status rejected",
                 "target_not_submitted")
    await api.assert_nothing_held(flow, before)


# ---- auth ----------------------------------------------------------------------


def _expired(api) -> str:
    return mint(api.secret, "advertiser", ttl=-60)


@pytest.mark.parametrize("authorization", [
    None, "Bearer", "Bearer not-a-jwt", "Basic dXNlcjpwYXNz", "expired", "wrong-key", "alg-none", "sub-not-uuid"])
async def test_a_missing_or_bad_token_is_401(api, authorization):
    now = int(time.time())
    tokens = {
        "expired": _expired(api),
        "wrong-key": mint("another-secret-of-32-characters!", "advertiser"),
        "alg-none": jwt.encode({"sub": str(uuid.uuid4()), "role": "admin", "exp": now + 60}, None, algorithm="none"),
        "sub-not-uuid": mint(api.secret, "admin", sub="alice"),
    }
    if authorization in tokens:
        authorization = f"Bearer {tokens[authorization]}"
    headers = {"Authorization": authorization} if authorization else {}

    assert_error(await api.call("GET", "/api/wallet", headers=headers), 401)


async def test_an_expired_admin_token_cannot_deposit(api):
    user = api.user("advertiser")
    expired = mint(api.secret, "admin", ttl=-60)

    response = await api.call("POST", f"/api/wallets/{user.id}/deposits", json={"amount": 100},
                              headers={"Authorization": f"Bearer {expired}", "Idempotency-Key": uuid.uuid4().hex})

    assert_error(response, 401)
    assert (await api.wallet(user))["balance"] == 0


@pytest.mark.parametrize("role,method,path,body", [
    ("advertiser", "POST", "/api/channels", {"title": "x", "handle": "@e2e_wrong_role", "pricePerPost": 10}),
    ("publisher", "POST", "/api/campaigns", {"name": "x"}),
    ("advertiser", "GET", "/api/moderation/queue", None),
    ("publisher", "GET", "/api/moderation/queue", None),
    ("advertiser", "GET", f"/api/wallets/{uuid.uuid4()}", None),
])
async def test_a_route_of_another_role_is_403(api, role, method, path, body):
    assert_error(await api.call(method, path, api.user(role), json=body), 403)


@pytest.mark.parametrize("role", ["advertiser", "publisher"])
async def test_depositing_as_a_non_admin_is_403_and_credits_nothing(api, role):
    user = api.user(role)
    response = await api.call("POST", f"/api/wallets/{user.id}/deposits", user, json={"amount": 1_000},
                              headers={"Idempotency-Key": uuid.uuid4().hex})

    assert_error(response, 403)
    assert (await api.wallet(user))["balance"] == 0


async def test_an_approve_of_channels_by_a_publisher_is_403_and_leaves_it_pending(api):
    publisher, name = api.user("publisher"), f"@e2e_{uuid.uuid4().hex[:12]}"
    await api.own_channel(publisher, name)
    channel = await api.ok("POST", "/api/channels", publisher, 201,
                           json={"title": "Mine", "handle": name, "pricePerPost": 10})

    assert_error(await api.call("POST", f"/api/channels/{channel['id']}/approve", publisher), 403)
    assert (await api.ok("GET", f"/api/channels/{channel['id']}", publisher))["status"] == "pending"


async def test_another_advertiser_cannot_read_a_campaign_its_targets_or_escrow(api):
    flow = await api.flow()
    assert (await api.approve(flow.target_id)).status_code == 200
    stranger = api.user("advertiser")

    # Each resource exists (the escrow too: the approve held it), so the
    # only right answer is the 403 of docs/api.md for a caller who is not
    # the owner, never a 404.
    for path, message in ((f"/api/campaigns/{flow.campaign['id']}", "Not campaign owner"),
                          (f"/api/campaigns/{flow.campaign['id']}/targets", "Not campaign owner"),
                          (flow.target_path, "Not campaign owner"),
                          (f"/api/escrows/{flow.target_id}",
                           "only the escrow's advertiser or publisher or an admin may read it")):
        assert_error(await api.call("GET", path, stranger), 403, message, "forbidden")


async def test_health_routes_need_no_token(api):
    assert (await api.ok("GET", "/api/health/live", None)) == {"status": "ok"}
    ready = await api.ok("GET", "/api/health/ready", None)
    assert ready == {"status": "ok", "services": {"campaigns": "SERVING", "moderation": "SERVING", "payments": "SERVING"}}


# ---- routes --------------------------------------------------------------------


async def test_the_seeds_campaign_targets_submit_route_does_not_exist(api):
    flow = await api.flow(submitted=False, funds=0)

    response = await api.call("POST", f"/api/campaign-targets/{flow.target_id}/submit", flow.advertiser)

    assert_error(response, 404)
    assert (await api.get_target(flow))["status"] == "pending"


@pytest.mark.parametrize("method,path", [("GET", "/api/nope"), ("POST", "/api/campaigns/x/y/z"), ("GET", "/nope")])
async def test_an_unknown_route_is_404_with_the_error_body(api, method, path):
    assert_error(await api.call(method, path, api.admin), 404)


# ---- malformed input -------------------------------------------------------------


@pytest.mark.parametrize("method,path", [
    ("GET", "/api/campaigns/not-a-uuid"),
    ("POST", "/api/campaigns/not-a-uuid/activate"),
    ("GET", "/api/channels/123"),
    ("POST", "/api/moderation/targets/not-a-uuid/approve"),
    ("GET", "/api/moderation/targets/not-a-uuid"),
    ("GET", "/api/escrows/not-a-uuid"),
    ("GET", "/api/wallets/not-a-uuid"),
])
async def test_a_bad_uuid_in_the_path_is_400(api, method, path):
    assert_error(await api.call(method, path, api.admin), 400)


async def test_a_bad_uuid_in_a_submit_path_is_400_and_changes_nothing(api):
    flow = await api.flow(submitted=False, funds=0)

    assert_error(await _submit(api, flow.advertiser, flow.campaign["id"], "zzz"), 400)
    assert_error(await _submit(api, flow.advertiser, "zzz", flow.target_id), 400)
    assert (await api.get_target(flow))["status"] == "pending"


@pytest.mark.parametrize("content", [b"{", b"not json", b"[1, 2]", b'"name"'])
async def test_a_body_that_is_not_a_json_object_is_400(api, content):
    response = await api.call("POST", "/api/campaigns", api.user("advertiser"), content=content,
                              headers={"Content-Type": "application/json"})
    assert_error(response, 400)


@pytest.mark.parametrize("body", [
    {}, {"title": "x", "handle": "@e2e_ok_handle"}, {"title": "x", "handle": "@e2e_ok_handle", "pricePerPost": 0},
    {"title": "x", "handle": "@e2e_ok_handle", "pricePerPost": -5}, {"title": "x", "handle": "@e2e_ok_handle", "pricePerPost": 1.5},
    {"title": "x", "handle": "@e2e_ok_handle", "pricePerPost": "10"},
])
async def test_a_channel_with_a_missing_or_bad_field_is_400(api, body):
    # The publisher is linked and owns the chat: the bad field is the only reason left.
    publisher = api.user("publisher")
    await api.own_channel(publisher, "@e2e_ok_handle")
    assert_error(await api.call("POST", "/api/channels", publisher, json=body), 400)


async def test_a_target_with_a_bad_scheduled_at_or_channel_is_400_and_creates_nothing(api):
    advertiser = api.user("advertiser")
    _, channel = await api.approved_channel()
    campaign = await api.campaign(advertiser)
    path = f"/api/campaigns/{campaign['id']}/targets"

    for body in ({"channelId": channel["id"], "scheduledAt": "tomorrow"},
                 {"channelId": channel["id"], "scheduledAt": "2030-01-01T10:00:00"},  # no zone
                 {"channelId": "not-a-uuid", "scheduledAt": from_now(days=1)},
                 {"scheduledAt": from_now(days=1)}):
        assert_error(await api.call("POST", path, advertiser, json=body), 400)
    assert (await api.ok("GET", path, advertiser))["items"] == []


@pytest.mark.parametrize("body,key", [
    ({"amount": 100}, None), ({"amount": 0}, "k"), ({"amount": -100}, "k"), ({"amount": 10.5}, "k"),
    ({"amount": "100"}, "k"), ({}, "k"),
])
async def test_a_deposit_without_a_key_or_with_a_bad_amount_is_400_and_credits_nothing(api, body, key):
    user = api.user("advertiser")
    headers = {"Idempotency-Key": f"{key}-{uuid.uuid4().hex}"} if key else {}

    response = await api.call("POST", f"/api/wallets/{user.id}/deposits", api.admin, json=body, headers=headers)

    assert_error(response, 400)
    assert (await api.wallet(user))["balance"] == 0


LISTS = ["/api/channels", "/api/campaigns", "/api/moderation/queue", "/api/wallet/ledger"]


@pytest.mark.parametrize("path", LISTS)
@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 201}, {"limit": -1}, {"limit": "abc"},
                                    {"cursor": "not-our-cursor"}, {"cursor": "eyJ4IjogMX0="}])
async def test_a_list_with_a_limit_out_of_range_or_a_foreign_cursor_is_400(api, path, params):
    user = api.admin if "moderation" in path else api.user("advertiser")
    assert_error(await api.call("GET", path, user, params=params), 400)


@pytest.mark.parametrize("path", LISTS)
async def test_a_list_at_the_limits_answers_the_page_shape(api, path):
    user = api.admin if "moderation" in path else api.user("advertiser")
    for limit in (1, 200):
        page = await api.ok("GET", path, user, params={"limit": limit})
        assert set(page) == {"items", "nextCursor"} and len(page["items"]) <= limit
