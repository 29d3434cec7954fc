"""Cursors are opaque and ours: anything else is InvalidInput (HTTP 400),
never an error deeper down."""
import base64
import datetime as dt
import json
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from common.errors import InvalidInput
from common.pagination import decode_cursor, encode_cursor, page_limit


def raw(*parts) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(parts)).encode()).decode().rstrip("=")


def test_cursor_round_trips_its_key():
    key = (dt.datetime(2026, 11, 23, 7, 0, tzinfo=dt.timezone.utc), uuid.uuid4())
    assert decode_cursor(encode_cursor(*key), dt.datetime, uuid.UUID) == key


def test_empty_cursor_means_first_page():
    assert decode_cursor("", int) is None


@pytest.mark.parametrize("cursor", [
    "not-base64!", raw(1, 2), raw("x"), raw(True), raw(10 ** 30), raw(-(10 ** 30)), raw(2 ** 63),
])
def test_integer_cursor_outside_int64_or_malformed_is_invalid_input(cursor):
    with pytest.raises(InvalidInput):
        decode_cursor(cursor, int)


@pytest.mark.parametrize("when", [
    "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "2026-01-01T00:00:00", "yesterday", 5, None,
])
def test_time_cursor_the_database_cannot_compare_is_invalid_input(when):
    with pytest.raises(InvalidInput):
        decode_cursor(raw(when, str(uuid.uuid4())), dt.datetime, uuid.UUID)


@pytest.mark.parametrize("identifier", [5, None, [], "not-a-uuid"])
def test_cursor_id_that_is_not_a_uuid_string_is_invalid_input(identifier):
    with pytest.raises(InvalidInput):
        decode_cursor(raw("2026-01-01T00:00:00+00:00", identifier), dt.datetime, uuid.UUID)


@given(st.text(max_size=200))
def test_any_text_is_a_valid_cursor_or_invalid_input(text):
    try:
        decode_cursor(text, dt.datetime, uuid.UUID)
    except InvalidInput:
        pass


@pytest.mark.parametrize("limit", [-1, 201, 10 ** 6])
def test_limit_outside_1_to_200_is_invalid_input(limit):
    with pytest.raises(InvalidInput):
        page_limit(limit)
