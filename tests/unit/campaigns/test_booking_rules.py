"""The booking rules as data: lead, horizon, one post per channel slot, and
the range of times the API stores; each refusal names its rule and numbers."""
import datetime as dt

import pytest

from common.errors import InvalidInput
from common.timestamps import EARLIEST as EARLIEST_TIME, LATEST as LATEST_TIME
from services.campaigns.domain import BookingRules, valid_time

NOW = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.timezone.utc)
RULES = BookingRules(min_lead_ms=30_000, horizon_days=31, post_gap_minutes=60)


@pytest.mark.parametrize("at, refusal", [
    (NOW + dt.timedelta(seconds=29), ("scheduled_too_soon", "scheduledAt must be in the future: at least 30 s ahead of now")),
    (NOW - dt.timedelta(days=1), ("scheduled_too_soon", "scheduledAt must be in the future: at least 30 s ahead of now")),
    (NOW + dt.timedelta(seconds=30), None),
    (NOW + dt.timedelta(days=31), None),
    (NOW + dt.timedelta(days=31, seconds=1),
     ("beyond_booking_horizon", "scheduledAt must be at most 31 days ahead (the booking horizon)")),
    (dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.timezone.utc),
     ("beyond_booking_horizon", "scheduledAt must be at most 31 days ahead (the booking horizon)")),
])
def test_schedule_refusals(at, refusal):
    assert RULES.schedule_refusal(at, NOW) == refusal


def test_the_lead_is_named_in_minutes_when_whole():
    rules = BookingRules(min_lead_ms=5 * 60_000)
    assert rules.schedule_refusal(NOW, NOW)[1] == "scheduledAt must be in the future: at least 5 min ahead of now"


def test_a_slot_is_the_gap_from_the_post_on():
    assert RULES.slot(NOW) == (NOW, NOW + dt.timedelta(minutes=60))


def test_a_post_booked_nearby_is_named_with_the_gap():
    assert RULES.slot_refusal(None) is None
    assert RULES.slot_refusal(NOW) == (
        "slot_taken", "The channel already has a post booked at 2026-11-25T12:00:00Z; "
                      "two posts of a channel must be at least 60 minutes apart")


@pytest.mark.parametrize("value", [EARLIEST_TIME - dt.timedelta(microseconds=1), LATEST_TIME + dt.timedelta(microseconds=1),
                                   dt.datetime(1, 1, 1, tzinfo=dt.timezone.utc)])
def test_times_out_of_range_are_invalid_naming_the_field(value):
    with pytest.raises(InvalidInput) as refused:
        valid_time(value, "startAt")
    assert (refused.value.code, refused.value.message) == (
        "invalid_time", "startAt must be between 2000-01-01 and 9999-12-31 (UTC)")


@pytest.mark.parametrize("value", [EARLIEST_TIME, LATEST_TIME, None])
def test_times_in_range_pass(value):
    assert valid_time(value, "startAt") == value
