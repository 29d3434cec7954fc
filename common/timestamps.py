"""google.protobuf.Timestamp ↔ aware datetime (UTC)."""
import datetime as dt

from google.protobuf.timestamp_pb2 import Timestamp


def to_timestamp(value: dt.datetime | None) -> Timestamp | None:
    if value is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(value.astimezone(dt.timezone.utc))
    return stamp


def from_timestamp(message, field: str) -> dt.datetime | None:
    """The field as an aware UTC datetime, None when unset."""
    if not message.HasField(field):
        return None
    return getattr(message, field).ToDatetime(tzinfo=dt.timezone.utc)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)
