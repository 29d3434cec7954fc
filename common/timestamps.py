"""google.protobuf.Timestamp ↔ aware datetime (UTC)."""
import datetime as dt

from google.protobuf.timestamp_pb2 import Timestamp

# The instants the API accepts: every one can be stored, read back and
# serialised (PostgreSQL, the driver and protobuf all agree on them).
EARLIEST = dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)
LATEST = dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.timezone.utc)
RANGE_RULE = f"must be between {EARLIEST:%Y-%m-%d} and {LATEST:%Y-%m-%d} (UTC)"


def in_range(value: dt.datetime) -> bool:
    return EARLIEST <= value <= LATEST


def to_timestamp(value: dt.datetime | None) -> Timestamp | None:
    """The instant as a Timestamp; None for what names no instant a
    Timestamp can carry: the driver's naive stand-ins for PostgreSQL's
    -infinity/infinity (datetime.min/max), or anything out of range. A read
    never fails on a value already stored."""
    if value is None or value.tzinfo is None:
        return None
    stamp = Timestamp()
    try:
        stamp.FromDatetime(value.astimezone(dt.timezone.utc))
    except (ValueError, OverflowError):
        return None
    return stamp


def from_timestamp(message, field: str) -> dt.datetime | None:
    """The field as an aware UTC datetime, None when unset."""
    if not message.HasField(field):
        return None
    return getattr(message, field).ToDatetime(tzinfo=dt.timezone.utc)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)
