"""Keyset pagination with opaque cursors. A cursor is the sort key of the
last row of a page, base64url-encoded JSON; anything else is refused as
InvalidInput (HTTP 400)."""
import base64
import binascii
import datetime as dt
import json
import uuid

from common.errors import InvalidInput

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


def page_limit(limit: int | None) -> int:
    """0 (proto default) means the default page size."""
    if not limit:
        return DEFAULT_LIMIT
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be between 1 and {MAX_LIMIT}")
    return limit


def encode_cursor(*key: object) -> str:
    parts = [k.isoformat() if isinstance(k, dt.datetime) else str(k) if isinstance(k, uuid.UUID) else k for k in key]
    return base64.urlsafe_b64encode(json.dumps(parts, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, *kinds: type) -> tuple | None:
    """The key a cursor carries, typed as `kinds` (datetime, uuid.UUID, int,
    str); None for an empty cursor; InvalidInput for one that is not ours."""
    if not cursor:
        return None
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(raw, list) or len(raw) != len(kinds):
            raise ValueError
        return tuple(_typed(value, kind) for value, kind in zip(raw, kinds))
    except (ValueError, TypeError, OverflowError, binascii.Error, UnicodeDecodeError, json.JSONDecodeError):
        raise InvalidInput("cursor is not valid") from None


INT64 = range(-(2 ** 63), 2 ** 63)
# Keys the database can compare: a time whose UTC value PostgreSQL can hold.
EARLIEST = dt.datetime(1, 1, 2, tzinfo=dt.timezone.utc)
LATEST = dt.datetime(9999, 12, 30, tzinfo=dt.timezone.utc)


def _typed(value, kind):
    if kind is dt.datetime:
        if not isinstance(value, str):
            raise ValueError
        parsed = dt.datetime.fromisoformat(value)
        if parsed.tzinfo is None or not EARLIEST <= parsed <= LATEST:
            raise ValueError
        return parsed.astimezone(dt.timezone.utc)
    if kind is uuid.UUID:
        if not isinstance(value, str):
            raise ValueError
        return uuid.UUID(value)
    if kind is int:
        if not isinstance(value, int) or isinstance(value, bool) or value not in INT64:
            raise ValueError
        return value
    if not isinstance(value, str):
        raise ValueError
    return value
