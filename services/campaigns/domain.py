"""Campaigns' pure rules: the two lifecycle tables, the seed's preconditions
with their messages, and input limits. No I/O and no clock: time is an
argument."""
import dataclasses
import datetime as dt
import ipaddress
import re
import urllib.parse

from common.errors import AlreadyExists, Conflict, DomainError, Forbidden, InvalidInput, PreconditionFailed
from common.fsm import assert_transition
from common import timestamps
from common.reasons import Reason

# The acting roles of common.auth, plus the one pseudo-actor below: a campaign
# cancellation cascading to its targets (the only way an approving target ends
# up cancelled; its saga then refunds).
CAMPAIGN_CANCELLATION = "campaign_cancellation"

CAMPAIGN_MOVES = {
    ("draft", "active"): {"advertiser", "admin", "system"},
    ("draft", "cancelled"): {"admin"},
    ("active", "paused"): {"advertiser", "admin"},
    ("active", "completed"): {"admin", "system"},
    ("active", "cancelled"): {"advertiser", "admin"},
    ("paused", "active"): {"advertiser", "admin"},
    ("paused", "cancelled"): {"admin"},
}

TARGET_MOVES = {
    ("pending", "submitted"): {"advertiser"},
    ("rejected", "submitted"): {"advertiser"},  # resubmit
    ("submitted", "approving"): {"system"},  # saga: ReserveTarget
    ("approving", "submitted"): {"system"},  # saga: ReleaseTarget (hold refused)
    ("approving", "approved"): {"system"},  # saga: ApproveTarget
    ("submitted", "rejected"): {"admin"},
    ("pending", "cancelled"): {"advertiser", "admin", CAMPAIGN_CANCELLATION},
    ("submitted", "cancelled"): {"advertiser", "admin", CAMPAIGN_CANCELLATION},
    ("rejected", "cancelled"): {"advertiser", "admin", CAMPAIGN_CANCELLATION},
    ("approving", "cancelled"): {CAMPAIGN_CANCELLATION},
    ("approved", "cancelled"): {"advertiser", "admin", CAMPAIGN_CANCELLATION},
    ("approved", "published"): {"system"},  # the post is out
    ("approved", "failed"): {"system"},  # a no-show or a definite refusal: refunded
    ("published", "completed"): {"system"},  # kept up through the window: released
    ("published", "failed"): {"system"},  # removed early: refunded
    ("approved", "declined"): {"publisher", "system"},  # the owner declined, or never answered: refunded
}

# Targets a campaign cancellation sweeps up, read off the table.
CASCADE_CANCELLABLE = frozenset(frm for (frm, to), actors in TARGET_MOVES.items()
                                if to == "cancelled" and CAMPAIGN_CANCELLATION in actors)
# Cancelling these may leave money in escrow: a refund is sent for each.
REFUNDABLE = frozenset({"approving", "approved"})
# A campaign is not completed while one of its targets holds money in
# escrow; completing it cancels the targets that never booked a post.
HOLDING_ESCROW = ("approving", "approved", "published")
UNBOOKED_ON_COMPLETE = frozenset({"pending", "submitted", "rejected"})
# The outbox topic of the refund owed for each of them (refunds.py delivers it).
REFUND_TOPIC = "escrow.refund"

TARGET_NOT_FOUND = "Campaign target not found"

# action → (statuses it applies to, status it leads to, past participle for messages)
CAMPAIGN_ACTIONS = {
    "activate": ({"draft"}, "active", "activated"),
    "pause": ({"active"}, "paused", "paused"),
    "resume": ({"paused"}, "active", "resumed"),
    "cancel": ({"draft", "active", "paused"}, "cancelled", "cancelled"),
    "complete": ({"active"}, "completed", "completed"),
}

CREATIVE_EDITABLE = frozenset({"draft", "paused"})


class TargetBeingApproved(Conflict):
    """The target is locked by a running approve saga; reject, resubmit and
    cancel must wait for it to end (HTTP 409)."""

    code = Reason.TARGET_BEING_APPROVED

    def __init__(self):
        super().__init__("Target is being approved; try again later")


class ApproveRefused(PreconditionFailed):
    """A seed approve precondition fails; `code` names which."""


class SagaStepRefused(PreconditionFailed):
    """A saga step cannot apply to the target as it is now (cancelled
    meanwhile, or not reserved by this decision)."""


def check_owner_or_admin(actor_id: str, actor_role: str, owner_id: str) -> None:
    """Admins and the system act on anyone's campaign; others only on their own."""
    if actor_role in ("admin", "system"):
        return
    if actor_id != owner_id:
        raise Forbidden("Not campaign owner")


def check_owner(actor_id: str, owner_id: str) -> None:
    if actor_id != owner_id:
        raise Forbidden("Not campaign owner")


@dataclasses.dataclass(frozen=True)
class CampaignView:
    status: str
    creatives: int
    start_at: dt.datetime | None
    end_at: dt.datetime | None


def plan_campaign_change(action: str, campaign: CampaignView, actor_role: str, now: dt.datetime) -> str:
    """The status `action` moves the campaign to, or the seed's refusal."""
    if action not in CAMPAIGN_ACTIONS:
        raise InvalidInput(f"action must be one of {', '.join(CAMPAIGN_ACTIONS)}")
    sources, wanted, past = CAMPAIGN_ACTIONS[action]
    if campaign.status not in sources:
        raise PreconditionFailed(f"Campaign cannot be {past} from status {campaign.status}",
                                 code=Reason.INVALID_TRANSITION)
    if action == "activate":
        if campaign.creatives == 0:
            raise PreconditionFailed("Campaign must have at least one creative", code=Reason.NO_CREATIVES)
        if campaign.start_at and campaign.end_at and campaign.start_at >= campaign.end_at:
            raise PreconditionFailed("startAt must be before endAt", code=Reason.INVALID_DATES)
        if campaign.end_at and campaign.end_at <= now:
            raise PreconditionFailed("endAt must be in the future", code=Reason.INVALID_DATES)
    assert_transition(CAMPAIGN_MOVES, campaign.status, wanted, actor_role, subject="Campaign transition")
    return wanted


@dataclasses.dataclass(frozen=True)
class TargetView:
    """What the submit and approve preconditions look at."""
    status: str
    campaign_id: str
    campaign_status: str
    creatives: int
    channel_status: str
    scheduled_at: dt.datetime


# A channel's bookings: a target holds its slot from submit on, while
# submitted, approving, approved or published.
BOOKED = ("submitted", "approving", "approved", "published")

def valid_time(value: dt.datetime | None, field: str) -> dt.datetime | None:
    """A time the API can store, read back and serialise (the gateway checks
    the same range first; internal callers meet it here)."""
    if value is not None and not timestamps.in_range(value):
        raise InvalidInput(f"{field} {timestamps.RANGE_RULE}", code=Reason.INVALID_TIME)
    return value


@dataclasses.dataclass(frozen=True)
class BookingRules:
    """When a post may be booked, as data: at least `min_lead_ms` ahead of
    now, at most `horizon_days` ahead, and two posts of one channel at
    least `post_gap_minutes` apart. Checked at create, submit and approve."""
    min_lead_ms: int
    horizon_days: int = 31
    post_gap_minutes: int = 60

    @property
    def post_gap(self) -> dt.timedelta:
        return dt.timedelta(minutes=self.post_gap_minutes)

    def earliest(self, now: dt.datetime) -> dt.datetime:
        return now + dt.timedelta(milliseconds=self.min_lead_ms)

    def latest(self, now: dt.datetime) -> dt.datetime:
        return now + dt.timedelta(days=self.horizon_days)

    def slot(self, scheduled_at: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
        """The slot a booked post holds: no other post of its channel may start in it."""
        return scheduled_at, scheduled_at + self.post_gap

    def schedule_refusal(self, scheduled_at: dt.datetime, now: dt.datetime) -> tuple[str, str] | None:
        """Why scheduledAt cannot be booked now, as (code, message), or None."""
        if scheduled_at < self.earliest(now):
            return (Reason.SCHEDULED_TOO_SOON,
                    f"scheduledAt must be in the future: at least {_duration(self.min_lead_ms)} ahead of now")
        if scheduled_at > self.latest(now):
            return (Reason.BEYOND_BOOKING_HORIZON,
                    f"scheduledAt must be at most {self.horizon_days} days ahead (the booking horizon)")
        return None

    def slot_refusal(self, booked_nearby: dt.datetime | None) -> tuple[str, str] | None:
        """Refusal when another post of the channel is booked within the gap."""
        if booked_nearby is None:
            return None
        return (Reason.SLOT_TAKEN,
                f"The channel already has a post booked at {booked_nearby.astimezone(dt.timezone.utc):%Y-%m-%dT%H:%M:%SZ};"
                f" two posts of a channel must be at least {self.post_gap_minutes} minutes apart")


def _duration(ms: int) -> str:
    if ms % 60_000 == 0 and ms >= 60_000:
        return f"{ms // 60_000} min"
    return f"{ms / 1000:g} s"


def refuse(refusal: tuple[str, str] | None) -> None:
    if refusal is not None:
        code, message = refusal
        raise PreconditionFailed(message, code=code)


def check_submit(target: TargetView, now: dt.datetime, rules: BookingRules) -> None:
    """The seed's submit preconditions, in its order (ownership is checked
    before, by the caller)."""
    if target.campaign_status != "active":
        raise PreconditionFailed(
            f"Campaign must be active to submit targets (current status: {target.campaign_status})",
            code=Reason.CAMPAIGN_NOT_ACTIVE)
    if target.status == "approving":
        raise TargetBeingApproved()
    if (target.status, "submitted") not in TARGET_MOVES:
        raise PreconditionFailed(f"Target cannot be submitted from status {target.status}",
                                 code=Reason.INVALID_TRANSITION)
    if target.channel_status != "approved":
        raise PreconditionFailed("Channel must be approved", code=Reason.CHANNEL_NOT_APPROVED)
    if target.creatives == 0:
        raise PreconditionFailed("Campaign has no creatives", code=Reason.NO_CREATIVES)
    refuse(rules.schedule_refusal(target.scheduled_at, now))
    assert_transition(TARGET_MOVES, target.status, "submitted", "advertiser", subject="Target transition")


@dataclasses.dataclass(frozen=True)
class Approvable:
    """What an approvable target is, as data: the statuses it and its
    campaign and channel must have, at least one creative, and the earliest
    scheduledAt allowed now. `approve_refusal` judges a view by it, and
    ReserveTarget's one-statement path guards its write with the same values."""
    status: str = "submitted"
    campaign_status: str = "active"
    channel_status: str = "approved"


APPROVABLE = Approvable()


CANCELLED_NOT_APPROVABLE = "Target cannot be approved from status cancelled"


def approve_refusal(target: TargetView, now: dt.datetime, rules: BookingRules) -> tuple[str, str] | None:
    """Why an approve would be refused now, as (code, seed message), or None.
    ReserveTarget judges with this one function."""
    if target.status == "cancelled":
        # One answer for a cancelled target, whenever the cancel came: the
        # saga's step (approve_step_refusal) and a repeated approve
        # (moderation) say the same.
        return Reason.TARGET_CANCELLED, CANCELLED_NOT_APPROVABLE
    if target.status != APPROVABLE.status:
        return Reason.TARGET_NOT_SUBMITTED, f"Target cannot be approved from status {target.status}"
    if target.campaign_status != APPROVABLE.campaign_status:
        return (Reason.CAMPAIGN_NOT_ACTIVE,
                f"Campaign {target.campaign_id} must be active (current: {target.campaign_status})")
    if target.creatives == 0:
        return Reason.NO_CREATIVES, "Campaign has no creatives"
    if target.channel_status != APPROVABLE.channel_status:
        return Reason.CHANNEL_NOT_APPROVED, "Channel must be approved"
    return rules.schedule_refusal(target.scheduled_at, now)


CLOSED_CAMPAIGN = frozenset({"cancelled", "completed"})


def check_target_creation(campaign_status: str) -> None:
    """A closed campaign buys no more posts."""
    if campaign_status in CLOSED_CAMPAIGN:
        raise PreconditionFailed(f"Cannot add targets to a {campaign_status} campaign", code=Reason.CAMPAIGN_CLOSED)


def approve_step_refusal(status: str) -> tuple[str, str]:
    """Why ApproveTarget refuses a target this decision does not hold, as
    (code, message) (recorded for the decision; rule 5): a cancellation won,
    or anything else."""
    if status == "cancelled":
        return Reason.TARGET_CANCELLED, CANCELLED_NOT_APPROVABLE
    return Reason.TARGET_NOT_RESERVED, f"Target is not reserved by this decision (status: {status})"


def check_target_cancel_move(status: str) -> None:
    """A status with no cancel move at all (published, completed, failed,
    cancelled) is a state rule: 400 invalid_transition, judged before
    anything else (its post job's status included)."""
    if (status, "cancelled") not in TARGET_MOVES:
        raise PreconditionFailed(f"Target cannot be cancelled from status {status}", code=Reason.INVALID_TRANSITION)


def check_target_cancel(status: str, actor_role: str) -> None:
    """A single target's cancel by its owner or an admin."""
    if status == "approving":
        raise TargetBeingApproved()
    check_target_cancel_move(status)
    assert_transition(TARGET_MOVES, status, "cancelled", actor_role, subject="Target transition")


def reject_refusal_from_record(detail: dict) -> DomainError:
    """The recorded refusal of a reject decision, as the error it was."""
    if detail["code"] == TargetBeingApproved.code:
        return TargetBeingApproved()
    return SagaStepRefused(detail["message"], code=detail["code"])


def check_reject(status: str) -> None:
    if status == "approving":
        raise TargetBeingApproved()
    if status != "submitted":
        raise PreconditionFailed(f"Target cannot be rejected from status {status}", code=Reason.INVALID_TRANSITION)
    assert_transition(TARGET_MOVES, status, "rejected", "admin", subject="Target transition")


# ---- input limits -------------------------------------------------------
NAME_MAX = 200
TITLE_MAX = 200
CREATIVE_TEXT_MAX = 4096
MEDIA_URL_MAX = 2048
REASON_MAX = 1000
PRICE_LIMIT = 10**12
HANDLE = re.compile(r"@[A-Za-z0-9_]{3,64}")
CURRENCY = re.compile(r"[A-Z]{3}")
CHANNEL_STATUSES = ("pending", "approved", "rejected", "suspended")


def valid_text(value: str, field: str, limit: int, *, required: bool = True) -> str:
    text = value.strip()
    if required and not text:
        raise InvalidInput(f"{field} is required")
    if len(value) > limit:
        raise InvalidInput(f"{field} must be at most {limit} characters")
    return text


def valid_handle(value: str) -> str:
    if not HANDLE.fullmatch(value):
        raise InvalidInput("handle must look like @name (3-64 letters, digits or _)")
    return value


def valid_price(value: int) -> int:
    if not 0 < value < PRICE_LIMIT:
        raise InvalidInput(f"pricePerPost must be a positive integer below {PRICE_LIMIT}")
    return value


def valid_currency(value: str, platform: str) -> str:
    """The platform trades in one currency: empty means it, anything else is refused."""
    if not value:
        return platform
    if not CURRENCY.fullmatch(value):
        raise InvalidInput("currency must be 3 upper-case letters (ISO 4217)")
    if value != platform:
        raise PreconditionFailed(f"currency must be {platform}: the platform trades in {platform} only",
                                 code=Reason.CURRENCY_NOT_SUPPORTED)
    return value


# What no URL a browser follows contains as written: controls, spaces,
# quotes, angle brackets, a backslash or a backtick. Stored, such a value
# breaks whoever parses it later (a client's URL parser, an HTML attribute).
URL_FORBIDDEN = re.compile(r"[\x00-\x20\x7f-\x9f\"'<>\\`]")
HOST_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
HOSTNAME_MAX = 253


def valid_http_url(value: str, field: str, *, limit: int = MEDIA_URL_MAX) -> str:
    """An absolute http(s) URL, parsed: a host that is a hostname (IDN
    allowed) or a bracketed IPv6 literal, a valid port, none of the
    characters in URL_FORBIDDEN, at most `limit` characters."""
    meaning = (f"{field} must be an http(s) URL with a valid host (a hostname or a bracketed IPv6 address), "
               f"without spaces, quotes, angle brackets or control characters, of at most {limit} characters")
    if len(value) > limit or URL_FORBIDDEN.search(value):
        raise InvalidInput(meaning)
    try:
        parts = urllib.parse.urlsplit(value)
        parts.port  # raises on a port that is not a number in range
    except ValueError:
        raise InvalidInput(meaning) from None
    if parts.scheme not in ("http", "https") or not value.lower().startswith(parts.scheme + "://"):
        raise InvalidInput(meaning)
    bracketed = parts.netloc.rpartition("@")[2].startswith("[")
    if not (_valid_ipv6_literal(parts.hostname) if bracketed else _valid_hostname(parts.hostname)):
        raise InvalidInput(meaning)
    return value


def _valid_ipv6_literal(host: str | None) -> bool:
    try:
        ipaddress.IPv6Address(host or "")
    except ValueError:
        return False
    return True


def _valid_hostname(host: str | None) -> bool:
    if not host:
        return False
    try:
        ascii_host = host.encode("idna").decode("ascii") if not host.isascii() else host
    except UnicodeError:
        return False
    labels = ascii_host.removesuffix(".").split(".")
    return 0 < len(ascii_host) <= HOSTNAME_MAX and all(HOST_LABEL.fullmatch(label) for label in labels)


def valid_media_url(value: str) -> str | None:
    if not value:
        return None
    return valid_http_url(value, "mediaUrl")


def valid_channel_status_filter(value: str) -> str | None:
    if not value:
        return None
    if value not in CHANNEL_STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(CHANNEL_STATUSES)}")
    return value


# ---- channel ownership (docs/design.md, "Who owns a channel, and who agrees")
# A channel's moves and who makes them: an admin moderates a pending
# listing; its owner sends a rejected or suspended one back (proving
# ownership again); the publisher worker suspends one whose owner lost the
# chat, and an admin may reject it then.
CHANNEL_MOVES = {
    ("pending", "approved"): {"admin"},
    ("pending", "rejected"): {"admin"},
    ("rejected", "pending"): {"publisher"},
    ("suspended", "pending"): {"publisher"},
    ("approved", "suspended"): {"system"},
    ("suspended", "rejected"): {"admin"},  # frees the chat of an owner who will not prove it again
}
# A listing that holds its chat and handle: no second one may be made.
LIVE_CHANNEL = ("pending", "approved", "suspended")
# What Telegram calls the members who own a chat for us.
CHAT_OWNERS = frozenset({"creator", "administrator"})


def moved_from(moves: dict, to: str, actor_role: str) -> list[str]:
    """The statuses `actor_role` may move to `to` from, read off a table."""
    return sorted(frm for (frm, dest), actors in moves.items() if dest == to and actor_role in actors)


def check_channel_owner(actor_id: str, owner_id: str) -> None:
    if actor_id != owner_id:
        raise Forbidden("Not the channel's owner")


def check_resubmit(status: str) -> None:
    if (status, "pending") not in CHANNEL_MOVES:
        raise PreconditionFailed(f"Channel cannot be resubmitted from status {status}",
                                 code=Reason.INVALID_TRANSITION)
    assert_transition(CHANNEL_MOVES, status, "pending", "publisher", subject="Channel transition")


def not_linked() -> PreconditionFailed:
    return PreconditionFailed("Link your Telegram account first (POST /api/me/telegram/link, then press Start in"
                              " the bot)", code=Reason.TELEGRAM_NOT_LINKED)


def not_channel_admin(handle: str) -> Forbidden:
    return Forbidden(f"Your Telegram account is not the creator or an administrator of {handle}",
                     code=Reason.NOT_CHANNEL_ADMIN)


def already_listed(handle: str) -> AlreadyExists:
    return AlreadyExists(f"{handle} is listed already (a pending, approved or suspended listing of the same chat)",
                    code=Reason.CHANNEL_ALREADY_LISTED)


@dataclasses.dataclass(frozen=True)
class ConsentRules:
    """How long a channel owner has to answer an approved post, as data:
    acceptBy = min(approved at + `answer_s`, scheduledAt - `lead_s`).
    ApproveTarget's statement sets it (steps_store.APPROVE)."""
    answer_s: int = 86400
    lead_s: int = 300
