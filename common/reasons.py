"""The machine reasons of adtech.errors.v1.Reason (protos/adtech/errors/v1/
reasons.proto) under their wire names; the one place that maps the two.
`Reason.INSUFFICIENT_FUNDS` is REASON_INSUFFICIENT_FUNDS, and is the string
"insufficient_funds" that travels as ErrorInfo.reason and HTTP error `code`.

Derived from the generated descriptor, so a value added to the proto is
here at once, and a name the proto lacks fails where it is written:
`Reason.NO_SUCH` raises AttributeError, `Reason("no_such")` ValueError."""
import enum

from adtech.errors.v1 import reasons_pb2

_PREFIX = "REASON_"

# A str enum: a member IS its wire string, so it goes into ErrorInfo, JSON,
# SQL and comparisons with a peer's reason as it is.
Reason = enum.StrEnum("Reason", [
    (name.removeprefix(_PREFIX), name.removeprefix(_PREFIX).lower())
    for name, number in reasons_pb2.Reason.items() if number != reasons_pb2.REASON_UNSPECIFIED
], module=__name__)
