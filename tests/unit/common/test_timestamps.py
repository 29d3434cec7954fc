"""Reading a stored time never fails: what names no instant a Timestamp can
carry is shown as absent."""
import datetime as dt

import pytest

from common.timestamps import to_timestamp

UTC = dt.timezone.utc


@pytest.mark.parametrize("stored", [
    dt.datetime.min,  # the driver's stand-in for PostgreSQL's -infinity (naive)
    dt.datetime.max,  # … and for infinity
])
def test_infinities_are_absent(stored):
    assert to_timestamp(stored) is None


def test_an_instant_in_range_round_trips():
    moment = dt.datetime(2030, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    assert to_timestamp(moment).ToDatetime(tzinfo=UTC) == moment


def test_the_first_instant_in_another_zone_is_out_of_range_and_absent():
    assert to_timestamp(dt.datetime(1, 1, 1, 0, 30, tzinfo=dt.timezone(dt.timedelta(hours=1)))) is None
