"""Input types shared by the routes, with the services' real limits, so the
OpenAPI document states what is accepted and the edge refuses the rest with
400. They refuse at the edge what could otherwise surface as a 500 deeper
down: fractions, bools, strings and huge numbers as money, naive or
out-of-range timestamps, NUL bytes and lone surrogates in text (PostgreSQL
and protobuf refuse them)."""
import datetime as dt
import re
import uuid
from typing import Annotated

from fastapi import Path
from google.protobuf.timestamp_pb2 import Timestamp
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainValidator, WithJsonSchema
from pydantic.alias_generators import to_camel


# An amount of money has at most this many digits (minor units); campaigns
# bounds a channel's price the same way.
MONEY_DIGITS = 12

# The services' limits (services/*/domain.py; a unit test compares them).
NAME_MAX = 200  # a campaign's name
TITLE_MAX = 200  # a channel's title
CREATIVE_TEXT_MAX = 4096
MEDIA_URL_MAX = 2048
REASON_MAX = 1000  # a rejection's reason, of a channel or of a target
REFERENCE_MAX = 500  # a deposit's reference
DESTINATION_MAX = 500  # where a withdrawal is paid
EXTERNAL_REFERENCE_MAX = 500  # a paid withdrawal's reference
IDEMPOTENCY_KEY_MAX = 200
CREATIVES_MAX = 50  # creatives given with a new campaign
HANDLE_MAX = 65  # @ and 64 more

# Each pattern a text must match, with what it means to a person: the
# message of the 400 that refuses a text not matching it.
NO_NUL = r"^[^\u0000]*$"
# What the services strip as blank: exactly Python's str.isspace characters,
# spelled out, so every regex engine (the gateway's, a client's JSON Schema
# validator) agrees with them on what "blank" is.
_BLANK = "".join(f"\\u{code:04x}" for code in range(0x10000) if chr(code).isspace())
NOT_BLANK = rf"^[^\u0000]*[^\u0000{_BLANK}][^\u0000]*$"
HANDLE = r"^@[A-Za-z0-9_]{3,64}$"
CURRENCY = r"^([A-Z]{3})?$"
HTTP_URL = r"^(https?://[^\u0000]*)?$"
VISIBLE_ASCII = r"^[\x21-\x7e]+$"
# The syntax of a time: RFC 3339 with a time zone, any year 0001-9999. The
# range (common.timestamps: 2000-01-01 to 9999-12-31 UTC, else 400
# invalid_time naming the field) is the campaigns service's to judge: one
# rule, one code. The OpenAPI pattern documents the years 2001 to 9998, a
# subset inside the range whatever the offset.
_ANY_YEAR = "([0-9]{3}[1-9]|[0-9]{2}[1-9]0|[0-9][1-9]00|[1-9]000)"
_SAFE_YEAR = "(200[1-9]|20[1-9][0-9]|2[1-9][0-9]{2}|[3-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])"
_TIME_OF_DAY = r"-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?([Zz]|[+-][0-9]{2}:[0-9]{2})$"
RFC3339 = "^" + _SAFE_YEAR + _TIME_OF_DAY
_RFC3339 = re.compile("^" + _ANY_YEAR + _TIME_OF_DAY)
PATTERN_MEANINGS = {
    NO_NUL: "must not contain NUL characters",
    NOT_BLANK: "must not be blank nor contain NUL characters",
    HANDLE: "must look like @name (3-64 letters, digits or _)",
    CURRENCY: "must be 3 upper-case letters (ISO 4217)",
    HTTP_URL: "must be an http(s) URL",
    VISIBLE_ASCII: "must be visible ASCII characters without spaces",
}
INSTANT_MEANING = "must be an RFC 3339 timestamp with a time zone, e.g. 2030-01-01T12:00:00Z"


class InputModel(BaseModel):
    """camelCase in, field names accepted too; unknown fields ignored."""
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


def _valid_unicode(value: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text") from None
    return value


def _instant(value: object) -> Timestamp:
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        raise ValueError(INSTANT_MEANING)
    try:
        parsed = dt.datetime.fromisoformat(value.upper())
    except ValueError:
        raise ValueError("is not a valid date and time") from None
    stamp = Timestamp()
    try:
        stamp.FromDatetime(parsed.astimezone(dt.timezone.utc))
    except (OverflowError, ValueError):
        # Its offset takes it past year 1 or 9999: far outside the range, so
        # the edge a Timestamp can carry stands for it, and the service
        # refuses it as any other time out of range (invalid_time).
        stamp.FromDatetime(dt.datetime.min if parsed.year < 5000 else dt.datetime.max)
    return stamp


def _text(max_length: int, pattern: str, description: str):
    return Annotated[str, Field(max_length=max_length, pattern=pattern, description=description),
                     AfterValidator(_valid_unicode)]


Name = _text(NAME_MAX, NOT_BLANK, "Not blank")
Title = _text(TITLE_MAX, NOT_BLANK, "Not blank")
Handle = _text(HANDLE_MAX, HANDLE, "@ then 3-64 letters, digits or _")
Currency = _text(3, CURRENCY, "ISO 4217 code; USD when empty or absent")
CreativeText = _text(CREATIVE_TEXT_MAX, NOT_BLANK, "Not blank")
# The campaigns service parses it (services/campaigns/domain.py
# valid_http_url): a hostname or bracketed IPv6 host; no spaces, quotes,
# angle brackets or control characters.
MediaUrl = _text(MEDIA_URL_MAX, HTTP_URL, "An http(s) URL with a hostname or a bracketed IPv6 host, without "
                                          "spaces, quotes, angle brackets or control characters; none when empty")
MessageUrl = _text(MEDIA_URL_MAX, r"^https://t\.me/(?:c/)?[A-Za-z0-9_]+/[0-9]{1,18}$",
                   "The post's link, https://t.me/<channel>/<message id>")
RejectionReason = _text(REASON_MAX, NOT_BLANK, "Why, for the owner; not blank")
DeclineReason = _text(REASON_MAX, NOT_BLANK, "Why the channel's owner will not publish it, for the advertiser; "
                                             "not blank")
Reference = _text(REFERENCE_MAX, NO_NUL, "Free text kept on the ledger entry")
Destination = _text(DESTINATION_MAX, NOT_BLANK, "Where to pay the withdrawal (e.g. an IBAN); not blank")
ExternalReference = _text(EXTERNAL_REFERENCE_MAX, NOT_BLANK, "The payment's reference at the bank or processor; "
                                                             "not blank")
# A JSON integer only: 1500.0 and 1e3 are numbers JSON parses as floats and
# are refused (400 invalid_input), as docs/api.md says of money.
Money = Annotated[int, Field(strict=True, ge=1, le=10**MONEY_DIGITS - 1,
                             description=f"Minor units, a JSON integer (not 1500.0 nor 1e3), "
                                         f"at most {MONEY_DIGITS} digits")]
# A JSON true or false only: 1, "true" or "yes" are refused, as the document says.
Flag = Annotated[bool, Field(strict=True)]
Instant = Annotated[Timestamp, PlainValidator(_instant),
                    WithJsonSchema({"type": "string", "format": "date-time", "pattern": RFC3339,
                                    "description": "RFC 3339 with a time zone, between 2000-01-01 and 9999-12-31 "
                                                   "(UTC), else 400 invalid_time naming the field"})]


class Rejection(InputModel):
    reason: RejectionReason


def _path_id(alias: str, description: str):
    return Annotated[uuid.UUID, Path(alias=alias, description=description)]


# Path parameters: UUIDs named in camelCase, as API.md writes them.
ChannelId = _path_id("channelId", "The channel's id")
CampaignId = _path_id("campaignId", "The campaign's id")
TargetId = _path_id("targetId", "The target's id")
UserId = _path_id("userId", "The user's id (the token's sub)")
WithdrawalId = _path_id("withdrawalId", "The withdrawal's id")
PostJobId = _path_id("postJobId", "The post job's id")
