"""Input types shared by the routes. They refuse at the edge what could
otherwise surface as a 500 deeper down: floats, bools and huge numbers as
money, naive or out-of-range timestamps, NUL bytes and lone surrogates in
text (PostgreSQL and protobuf refuse them)."""
import datetime as dt
import re
from typing import Annotated

from google.protobuf.timestamp_pb2 import Timestamp
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainValidator, WithJsonSchema
from pydantic.alias_generators import to_camel

from common import timestamps

# An amount of money has at most this many digits (minor units); campaigns
# bounds a channel's price the same way.
MONEY_DIGITS = 12

_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})")


class InputModel(BaseModel):
    """camelCase in, field names accepted too; unknown fields ignored."""
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


def _clean_text(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text") from None
    return value


def _instant(value: object) -> Timestamp:
    if not isinstance(value, str) or not _RFC3339.fullmatch(value.upper()):
        raise ValueError("must be an RFC 3339 timestamp with a time zone, e.g. 2030-01-01T12:00:00Z")
    try:
        parsed = dt.datetime.fromisoformat(value.upper())
    except ValueError:
        raise ValueError("is not a valid date and time") from None
    try:
        in_range = timestamps.in_range(parsed.astimezone(dt.timezone.utc))
    except OverflowError:  # before year 1 once in UTC
        in_range = False
    if not in_range:
        raise ValueError(timestamps.RANGE_RULE)
    stamp = Timestamp()
    stamp.FromDatetime(parsed.astimezone(dt.timezone.utc))
    return stamp


Text = Annotated[str, Field(max_length=100_000), AfterValidator(_clean_text)]
Money = Annotated[int, Field(strict=True, gt=0, lt=10**MONEY_DIGITS,
                             description=f"Minor units, 0 < amount < 10^{MONEY_DIGITS}")]
Instant = Annotated[Timestamp, PlainValidator(_instant),
                    WithJsonSchema({"type": "string", "format": "date-time",
                                    "description": "RFC 3339 with a time zone"})]
