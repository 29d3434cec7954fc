"""What a newcomer hit, as rules through the gateway: times the API cannot
store are refused and never poison a list; a target cancelled after its
approve is not reported approved; a campaign is not completed with money
still in escrow; deposits reach only wallets their owners opened; one post
per channel per slot, within the booking horizon."""
import asyncio
import datetime as dt
import uuid

import pytest

from tests.e2e.client import assert_error, from_now, iso, parse_time

SLOT_MESSAGE = "two posts of a channel must be at least 60 minutes apart"


# ---- times -------------------------------------------------------------------
@pytest.mark.parametrize("field, value", [
    ("startAt", "0001-01-01T00:00:00Z"), ("startAt", "0001-01-01T00:30:00+01:00"),
    ("endAt", "9999-12-31T23:59:59.5Z"), ("startAt", "1999-12-31T23:59:59Z"),
    ("endAt", "9999-12-31T23:30:00-01:00")])
async def test_a_campaign_time_outside_the_stored_range_is_400_invalid_time_naming_the_field_as_the_docs_say(
        api, field, value):
    advertiser = api.user("advertiser")
    response = await api.call("POST", "/api/campaigns", advertiser, json={"name": "Far away", field: value})
    error = assert_error(response, 400, code="invalid_time")
    assert error["message"] == f"{field} must be between 2000-01-01 and 9999-12-31 (UTC)"
    listed = await api.ok("GET", "/api/campaigns", advertiser)
    assert listed["items"] == []


@pytest.mark.parametrize("value", ["2000-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "2000-06-01T00:00:00+02:00"])
async def test_a_campaign_time_at_the_documented_edges_is_accepted(api, value):
    created = await api.ok("POST", "/api/campaigns", api.user("advertiser"), 201,
                           json={"name": "At the edge", "endAt": value})
    assert created["endAt"].endswith("Z") and parse_time(created["endAt"]) == parse_time(value)


# ---- approve after cancel -------------------------------------------------------
async def test_approving_again_a_target_cancelled_after_its_approve_is_400_with_its_status(api):
    flow = await api.flow(price=1_000, funds=5_000)
    assert (await api.approve(flow.target_id)).status_code == 200
    await api.ok("POST", f"{flow.target_path}/cancel", flow.advertiser)
    api.approved.pop(flow.target_id)  # no longer approved: its escrow is refunded (E.4 checks the approved ones)

    error = assert_error(await api.approve(flow.target_id), 400, "Target cannot be approved from status cancelled")
    assert error["code"] == "target_cancelled"
    assert (await api.get_target(flow))["status"] == "cancelled"


async def test_approving_again_a_target_still_approved_answers_the_same_post_job(api):
    flow = await api.flow(price=1_000, funds=5_000)
    first = (await api.approve(flow.target_id)).json()
    again = await api.approve(flow.target_id)
    assert again.status_code == 200
    assert (again.json()["postJobId"], again.json()["escrowId"], again.json()["alreadyApproved"]) == (
        first["postJobId"], first["escrowId"], True)


# ---- completing a campaign --------------------------------------------------------
async def test_completing_a_campaign_with_an_approved_target_is_409_and_leaves_its_money_held(api):
    flow = await api.flow(price=1_000, funds=5_000)
    assert (await api.approve(flow.target_id)).status_code == 200

    response = await api.call("POST", f"/api/campaigns/{flow.campaign['id']}/complete", api.admin)
    assert_error(response, 409, code="campaign_has_open_targets")
    campaign = await api.ok("GET", f"/api/campaigns/{flow.campaign['id']}", api.admin)
    assert campaign["status"] == "active"
    assert (await api.ok("GET", f"/api/escrows/{flow.target_id}", api.admin))["status"] == "held"
    assert (await api.wallet(flow.advertiser))["held"] == 1_000


async def test_completing_a_campaign_cancels_its_targets_that_never_booked_and_empties_the_queue(api):
    flow = await api.flow(price=1_000, funds=5_000)  # one submitted target
    pending = await api.add_target(flow.advertiser, flow.campaign, flow.channel)

    completed = await api.ok("POST", f"/api/campaigns/{flow.campaign['id']}/complete", api.admin)
    assert completed["status"] == "completed"
    assert (await api.get_target(flow))["status"] == "cancelled"
    assert (await api.get_target(pending))["status"] == "cancelled"
    assert_error(await api.approve(flow.target_id), 400)
    assert (await api.wallet(flow.advertiser)) == {"userId": flow.advertiser.id, "currency": "USD",
                                                   "balance": 5_000, "held": 0, "pendingPayout": 0}


# ---- deposits -------------------------------------------------------------------
async def test_a_deposit_to_a_user_without_a_wallet_is_404_and_strands_nothing(api):
    nobody = str(uuid.uuid4())
    response = await api.call("POST", f"/api/wallets/{nobody}/deposits", api.admin, json={"amount": 500},
                              headers={"Idempotency-Key": uuid.uuid4().hex})
    assert_error(response, 404, code="wallet_not_found")
    assert (await api.ok("GET", f"/api/wallets/{nobody}", api.admin))["balance"] == 0
    again = await api.call("POST", f"/api/wallets/{nobody}/deposits", api.admin, json={"amount": 500},
                           headers={"Idempotency-Key": uuid.uuid4().hex})
    assert_error(again, 404, code="wallet_not_found")  # an admin's read opened nothing


async def test_the_owners_first_look_opens_the_wallet_and_the_same_key_then_deposits(api):
    user, key = api.user("advertiser"), uuid.uuid4().hex
    path, headers = f"/api/wallets/{user.id}/deposits", {"Idempotency-Key": key}
    assert_error(await api.call("POST", path, api.admin, json={"amount": 500}, headers=headers), 404)
    await api.ok("GET", "/api/wallet", user)
    funded = await api.ok("POST", path, api.admin, 201, json={"amount": 500}, headers=headers)
    assert funded["wallet"]["balance"] == 500



async def test_a_deposit_in_another_currency_is_400_currency_not_supported_and_credits_nothing(api):
    user = api.user("advertiser")
    await api.ok("GET", "/api/wallet", user)
    path = f"/api/wallets/{user.id}/deposits"
    refused = await api.call("POST", path, api.admin, json={"amount": 1000, "currency": "EUR"},
                             headers={"Idempotency-Key": uuid.uuid4().hex})
    assert_error(refused, 400, code="currency_not_supported")
    assert (await api.wallet(user))["balance"] == 0
    funded = await api.ok("POST", path, api.admin, 201, json={"amount": 1000, "currency": "USD"},
                          headers={"Idempotency-Key": uuid.uuid4().hex})
    assert (funded["wallet"]["currency"], funded["wallet"]["balance"]) == ("USD", 1000)


# ---- booking rules --------------------------------------------------------------------
async def _target_at(api, advertiser, campaign, channel, at: dt.datetime):
    return await api.call("POST", f"/api/campaigns/{campaign['id']}/targets", advertiser,
                          json={"channelId": channel["id"], "scheduledAt": iso(at)})


async def test_two_posts_of_a_channel_within_the_gap_the_second_is_refused_at_create_and_at_submit(api):
    flow = await api.flow(price=1_000, funds=0)  # submitted: holds its slot
    at = parse_time(flow.target["scheduledAt"])
    owner = api.user("advertiser")
    other = await api.campaign(owner)

    for delta in (dt.timedelta(0), dt.timedelta(minutes=59), -dt.timedelta(minutes=59)):
        error = assert_error(await _target_at(api, owner, other, flow.channel, at + delta), 400, code="slot_taken")
        assert SLOT_MESSAGE in error["message"] and iso(at)[:19] in error["message"]
    assert (await _target_at(api, owner, other, flow.channel, at + dt.timedelta(minutes=60))).status_code == 201


async def test_a_target_created_while_the_slot_was_free_is_refused_at_submit_once_another_booked_it(api):
    flow = await api.flow(price=1_000, funds=0, submitted=False)
    rival_owner = api.user("advertiser")
    rival = await api.campaign(rival_owner)
    at = parse_time(flow.target["scheduledAt"]) + dt.timedelta(minutes=30)
    rival_target = (await _target_at(api, rival_owner, rival, flow.channel, at)).json()
    await api.submit(flow.advertiser, flow.target)  # books first

    response = await api.call("POST", f"/api/campaigns/{rival['id']}/targets/{rival_target['id']}/submit", rival_owner)
    assert_error(response, 400, code="slot_taken")
    assert (await api.get_target(rival_target))["status"] == "pending"


async def test_ten_concurrent_submits_for_one_slot_book_exactly_one(api):
    _, channel = await api.approved_channel()
    at = from_now(days=2)
    owners, targets = [], []
    for _ in range(10):
        owner = api.user("advertiser")
        campaign = await api.campaign(owner)
        owners.append(owner)
        targets.append(await api.add_target(owner, campaign, channel, at))
    responses = await asyncio.gather(*(api.call(
        "POST", f"/api/campaigns/{t['campaignId']}/targets/{t['id']}/submit", o) for o, t in zip(owners, targets)))
    assert sorted(r.status_code for r in responses) == [200] + [400] * 9
    assert {r.json()["error"]["code"] for r in responses if r.status_code == 400} == {"slot_taken"}


async def test_a_post_beyond_the_booking_horizon_is_refused_naming_it(api):
    flow = await api.flow(price=1_000, funds=0, submitted=False)
    response = await _target_at(api, flow.advertiser, flow.campaign, flow.channel,
                                dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=32))
    assert_error(response, 400, "scheduledAt must be at most 31 days ahead (the booking horizon)",
                 code="beyond_booking_horizon")
    far = await _target_at(api, flow.advertiser, flow.campaign, flow.channel,
                           dt.datetime(9998, 12, 31, 23, 59, 59, tzinfo=dt.timezone.utc))
    assert_error(far, 400, code="beyond_booking_horizon")
