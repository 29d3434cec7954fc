"""The seed's activation, submit and approve preconditions with their exact
messages, in the seed's order; time is an argument."""
import datetime as dt

import pytest

from common.errors import Conflict, Forbidden, InvalidInput, PreconditionFailed
from services.campaigns import domain, publication
from services.campaigns.domain import CampaignView, TargetView

NOW = dt.datetime(2026, 1, 25, 12, 0, tzinfo=dt.timezone.utc)
LEAD_MS = 30_000
RULES = domain.BookingRules(min_lead_ms=LEAD_MS)
# The seed's message, with the lead it means.
TOO_SOON = "scheduledAt must be in the future: at least 30 s ahead of now"
CAMPAIGN = "7c1f0b4e-0000-4000-8000-000000000001"


def campaign(status="draft", creatives=1, start_at=None, end_at=None):
    return CampaignView(status, creatives, start_at, end_at)


def target(status="pending", campaign_status="active", creatives=1, channel_status="approved",
           scheduled_at=NOW + dt.timedelta(hours=1)):
    return TargetView(status, CAMPAIGN, campaign_status, creatives, channel_status, scheduled_at)


@pytest.mark.parametrize("view,message", [
    (campaign(status="active"), "Campaign cannot be activated from status active"),
    (campaign(status="cancelled"), "Campaign cannot be activated from status cancelled"),
    (campaign(creatives=0), "Campaign must have at least one creative"),
    (campaign(start_at=NOW + dt.timedelta(days=2), end_at=NOW + dt.timedelta(days=1)), "startAt must be before endAt"),
    (campaign(end_at=NOW - dt.timedelta(seconds=1)), "endAt must be in the future"),
    (campaign(end_at=NOW), "endAt must be in the future"),
])
def test_activation_refusals_carry_the_seed_message(view, message):
    with pytest.raises(PreconditionFailed) as refused:
        domain.plan_campaign_change("activate", view, "advertiser", NOW)
    assert refused.value.message == message


def test_activation_checks_status_before_creatives():
    with pytest.raises(PreconditionFailed, match="from status paused"):
        domain.plan_campaign_change("activate", campaign(status="paused", creatives=0), "advertiser", NOW)


def test_activation_of_a_ready_draft_leads_to_active():
    view = campaign(start_at=NOW + dt.timedelta(days=1), end_at=NOW + dt.timedelta(days=2))
    assert domain.plan_campaign_change("activate", view, "advertiser", NOW) == "active"


@pytest.mark.parametrize("action,status,role,result", [
    ("pause", "active", "advertiser", "paused"),
    ("resume", "paused", "advertiser", "active"),
    ("cancel", "active", "advertiser", "cancelled"),
    ("cancel", "draft", "admin", "cancelled"),
    ("complete", "active", "system", "completed"),
])
def test_allowed_campaign_actions(action, status, role, result):
    assert domain.plan_campaign_change(action, campaign(status=status), role, NOW) == result


@pytest.mark.parametrize("action,status,role,error", [
    ("cancel", "draft", "advertiser", Forbidden),
    ("cancel", "paused", "advertiser", Forbidden),
    ("complete", "active", "advertiser", Forbidden),
    ("pause", "paused", "advertiser", PreconditionFailed),
    ("resume", "active", "admin", PreconditionFailed),
    ("cancel", "completed", "admin", PreconditionFailed),
    ("activate", "draft", "publisher", Forbidden),
])
def test_refused_campaign_actions(action, status, role, error):
    with pytest.raises(error):
        domain.plan_campaign_change(action, campaign(status=status), role, NOW)


def test_unknown_action_is_invalid_input():
    with pytest.raises(InvalidInput):
        domain.plan_campaign_change("archive", campaign(), "admin", NOW)


@pytest.mark.parametrize("view,message", [
    (target(campaign_status="draft"), "Campaign must be active to submit targets (current status: draft)"),
    (target(campaign_status="paused"), "Campaign must be active to submit targets (current status: paused)"),
    (target(status="submitted"), "Target cannot be submitted from status submitted"),
    (target(status="approved"), "Target cannot be submitted from status approved"),
    (target(status="cancelled"), "Target cannot be submitted from status cancelled"),
    (target(channel_status="pending"), "Channel must be approved"),
    (target(creatives=0), "Campaign has no creatives"),
    (target(scheduled_at=NOW + dt.timedelta(milliseconds=LEAD_MS - 1)), TOO_SOON),
    (target(scheduled_at=NOW - dt.timedelta(hours=1)), TOO_SOON),
])
def test_submit_refusals_carry_the_seed_message(view, message):
    with pytest.raises(PreconditionFailed) as refused:
        domain.check_submit(view, NOW, RULES)
    assert refused.value.message == message


def test_submit_checks_campaign_before_target_status():
    with pytest.raises(PreconditionFailed, match="Campaign must be active"):
        domain.check_submit(target(status="cancelled", campaign_status="draft"), NOW, RULES)


@pytest.mark.parametrize("status", ["pending", "rejected"])
def test_pending_and_rejected_targets_can_be_submitted(status):
    domain.check_submit(target(status=status, scheduled_at=NOW + dt.timedelta(milliseconds=LEAD_MS)), NOW, RULES)


def test_submitting_a_target_being_approved_is_a_conflict():
    with pytest.raises(Conflict) as refused:
        domain.check_submit(target(status="approving"), NOW, RULES)
    assert refused.value.code == "target_being_approved"


@pytest.mark.parametrize("view,code,message", [
    (target(status="pending"), "target_not_submitted", "Target cannot be approved from status pending"),
    (target(status="submitted", campaign_status="paused"), "campaign_not_active",
     f"Campaign {CAMPAIGN} must be active (current: paused)"),
    (target(status="submitted", creatives=0), "no_creatives", "Campaign has no creatives"),
    (target(status="submitted", channel_status="rejected"), "channel_not_approved", "Channel must be approved"),
    (target(status="submitted", scheduled_at=NOW + dt.timedelta(seconds=29)), "scheduled_too_soon",
     TOO_SOON),
    (target(status="submitted"), None, None),
])
def test_approve_refusal_names_the_first_failing_precondition(view, code, message):
    refusal = domain.approve_refusal(view, NOW, RULES)
    assert refusal == (None if code is None else (code, message))


def test_a_cancelled_target_is_refused_with_one_reason_before_the_approve_and_at_its_saga_step():
    before = domain.approve_refusal(target(status="cancelled"), NOW, RULES)
    assert before == domain.approve_step_refusal("cancelled") == (
        "target_cancelled", "Target cannot be approved from status cancelled")


@pytest.mark.parametrize("status", ["published", "completed", "failed", "cancelled"])
def test_a_status_with_no_cancel_move_is_an_invalid_transition(status):
    with pytest.raises(PreconditionFailed) as refused:
        domain.check_target_cancel_move(status)
    assert refused.value.code == "invalid_transition"


def test_approve_refusal_order_is_the_seeds():
    worst = target(status="approved", campaign_status="cancelled", creatives=0, channel_status="pending",
                   scheduled_at=NOW)
    assert domain.approve_refusal(worst, NOW, RULES)[0] == "target_not_submitted"
    assert domain.approve_refusal(target(status="submitted", campaign_status="cancelled", creatives=0),
                                  NOW, RULES)[0] == "campaign_not_active"


@pytest.mark.parametrize("status,error,code", [
    ("approving", Conflict, "target_being_approved"),
    ("cancelled", PreconditionFailed, "invalid_transition"),
    ("published", PreconditionFailed, "invalid_transition"),
])
def test_target_cancel_refusals(status, error, code):
    with pytest.raises(error) as refused:
        domain.check_target_cancel(status, "advertiser")
    assert refused.value.code == code


@pytest.mark.parametrize("status", ["pending", "submitted", "rejected", "approved"])
def test_owner_and_admin_cancel_open_targets(status):
    domain.check_target_cancel(status, "advertiser")
    domain.check_target_cancel(status, "admin")


def test_reject_of_a_target_being_approved_is_a_conflict():
    with pytest.raises(Conflict):
        domain.check_reject("approving")


def test_reject_from_another_status_names_it():
    with pytest.raises(PreconditionFailed, match="Target cannot be rejected from status pending"):
        domain.check_reject("pending")


def test_another_advertiser_is_not_the_owner_but_an_admin_may_act():
    with pytest.raises(Forbidden):
        domain.check_owner_or_admin("a", "advertiser", "b")
    domain.check_owner_or_admin("a", "admin", "b")


@pytest.mark.parametrize("check,value", [
    (domain.valid_handle, "channel"), (domain.valid_handle, "@ab"), (domain.valid_handle, "@" + "a" * 65),
    (domain.valid_handle, "@bad-handle"), (domain.valid_price, 0), (domain.valid_price, -5),
    (domain.valid_price, 10**12), (lambda v: domain.valid_currency(v, "USD"), "usd"),
    (lambda v: domain.valid_currency(v, "USD"), "USDX"),
    (domain.valid_media_url, "javascript:alert(1)"), (domain.valid_channel_status_filter, "gone"),
])
def test_bad_input_is_invalid(check, value):
    with pytest.raises(InvalidInput):
        check(value)


def test_text_limits():
    assert domain.valid_text("x" * 200, "name", domain.NAME_MAX)
    with pytest.raises(InvalidInput):
        domain.valid_text("x" * 201, "name", domain.NAME_MAX)
    with pytest.raises(InvalidInput):
        domain.valid_text("   ", "name", domain.NAME_MAX)
    assert domain.valid_text("y" * 4096, "text", domain.CREATIVE_TEXT_MAX)
    with pytest.raises(InvalidInput):
        domain.valid_text("y" * 4097, "text", domain.CREATIVE_TEXT_MAX)


def test_limits_at_the_edges_pass():
    assert domain.valid_handle("@abc") == "@abc"
    assert domain.valid_price(1) == 1 and domain.valid_price(10**12 - 1) == 10**12 - 1
    assert domain.valid_currency("", "USD") == "USD" and domain.valid_currency("EUR", "EUR") == "EUR"


def test_a_currency_other_than_the_platforms_is_not_supported():
    with pytest.raises(PreconditionFailed) as refused:
        domain.valid_currency("EUR", "USD")
    assert refused.value.code == "currency_not_supported"


@pytest.mark.parametrize("url", [
    'https://cdn.example/"a.png', "https://cdn.example/a'b.png", "https://cdn.example/<script>.png",
    "https:// cdn.example/a.png", "https://[not-ipv6]/x", "https://[::1/x", "https:///a.png", "https:cdn.example",
    "ftp://cdn.example/a.png", "https://cdn.example:99999/a.png", "https://-cdn.example/a.png",
    "https://cdn..example/a.png", "https://cdn.example/a\\b.png", "https://cdn.example/a\nb.png",
    "https://cdn.example/" + "a" * 2048,
])
def test_a_media_url_that_does_not_parse_as_an_http_url_is_invalid(url):
    with pytest.raises(InvalidInput, match="mediaUrl must be an http"):
        domain.valid_media_url(url)


@pytest.mark.parametrize("url", [
    "https://cdn.example/a.png", "http://cdn.example:8080/a.png?size=2#top", "https://[::1]/a.png",
    "https://[2001:db8::1]:8443/a.png", "https://пример.рф/a.png", "https://192.0.2.7/a.png",
])
def test_a_media_url_with_a_hostname_or_bracketed_ipv6_host_is_kept_as_given(url):
    assert domain.valid_media_url(url) == url


@pytest.mark.parametrize("url", ['https://t.me/chan/"1', "https://t.me/chan/<1>", "https:// t.me/chan/1",
                                 "https://[not-ipv6]/chan/1"])
def test_a_message_url_that_is_not_a_posts_link_is_invalid(url):
    with pytest.raises(InvalidInput, match="messageUrl must be the post's link"):
        publication.valid_resolution("published", url, "")
