"""Publication's pure rules: the post job's lifecycle table, when a job is
overdue, how long a transient failure waits, when the proof checks run, how
an admin resolves a job in review, and the refusals with their messages.
No I/O and no clock: time is an argument (docs/design.md, "Publication").

The at-most-once rule lives in the statements (publication_store.py): a
job is marked publishing in a commit before the Bot API call, the message
id is recorded in the commit after it, and a publishing job whose worker is
gone becomes needs_review, never queued."""
import dataclasses
import datetime as dt
import random
import re

from common.errors import Conflict, InvalidInput, PreconditionFailed
from common.reasons import Reason
from services.campaigns import domain

QUEUED, PUBLISHING, PUBLISHED, VERIFIED = "queued", "publishing", "published", "verified"
CANCELLED, FAILED, NEEDS_REVIEW = "cancelled", "failed", "needs_review"
AWAITING, DECLINED, EXPIRED = "awaiting_publisher", "declined", "expired"
JOB_STATUSES = (AWAITING, QUEUED, PUBLISHING, PUBLISHED, VERIFIED, CANCELLED, FAILED, NEEDS_REVIEW, DECLINED, EXPIRED)

# The post job's moves and who makes them (the worker is the system).
JOB_MOVES = {
    (AWAITING, QUEUED): {"publisher"},  # the channel's owner accepts before accept_by
    (AWAITING, DECLINED): {"publisher"},  # the owner declines: the target is declined and refunded
    (AWAITING, EXPIRED): {"system"},  # no answer by accept_by: the same as a decline
    (AWAITING, CANCELLED): {"advertiser", "admin"},  # the target is cancelled before an answer
    (QUEUED, PUBLISHING): {"system"},  # claimed, committed before the Bot API call
    (QUEUED, CANCELLED): {"advertiser", "admin"},  # the target is cancelled before publication
    (PUBLISHING, QUEUED): {"system"},  # a transient error: retried with backoff
    (PUBLISHING, PUBLISHED): {"system"},  # the message id recorded after the call
    (PUBLISHING, FAILED): {"system"},  # a definite refusal, or the deadline passed
    (PUBLISHING, NEEDS_REVIEW): {"system"},  # its worker died mid-call
    (PUBLISHED, VERIFIED): {"system"},  # the last proof check passed
    (PUBLISHED, FAILED): {"system"},  # the post was removed early
    (NEEDS_REVIEW, PUBLISHED): {"admin"},
    (NEEDS_REVIEW, QUEUED): {"admin"},
    (NEEDS_REVIEW, FAILED): {"admin"},
}

# The outbox topic of the release owed for a completed target (the refund
# topic is domain.REFUND_TOPIC, shared with cancellations).
RELEASE_TOPIC = "escrow.release"

# Why a job failed, in the words the API shows (failureReason).
NO_SHOW = "not published before the deadline (scheduledAt + {deadline_s} s)"
REMOVED_EARLY = "the post was removed from the channel before the end of the retention window"
CAMPAIGN_CANCELLED = "the campaign was cancelled before the post went out"
# Right before a post, the owner no longer owns the chat (or the listing is
# no longer approved), or the bot can no longer post: the wire reason leads.
OWNERSHIP_LOST = (f"{Reason.CHANNEL_OWNERSHIP_LOST}: the channel owner's Telegram account is no longer bound, or no"
                  " longer the chat's creator or an administrator; the listing is suspended")
LISTING_NOT_APPROVED = f"{Reason.CHANNEL_OWNERSHIP_LOST}: the listing is no longer approved ({{status}})"
BOT_CANNOT_POST = f"{Reason.CHANNEL_CANNOT_POST}: {{message}}; the listing is suspended"
DECLINED_IN_TELEGRAM = "declined in Telegram"

# A cancellation is refused once the job left the queue: the post may be out.
STARTED = frozenset({PUBLISHING, PUBLISHED, VERIFIED, NEEDS_REVIEW, FAILED})
NOT_STARTED = frozenset(JOB_STATUSES) - STARTED
# What a cancelled target's job goes from to cancelled: not out, not ended.
CANCELLABLE = frozenset({AWAITING, QUEUED})

RESOLUTIONS = ("published", "retry", "failed")
MESSAGE_URL = re.compile(r"https://t\.me/(?:c/)?[A-Za-z0-9_]+/([0-9]{1,18})")


@dataclasses.dataclass(frozen=True)
class PublicationPolicy:
    """The settings of publication, as data."""
    deadline_s: float = 3600.0  # PUBLISH_DEADLINE_S: a post not out by scheduledAt + this is a no-show
    checks: int = 2  # POST_CHECKS: random checks inside the retention window (plus one at its end)
    retention_s: float = 86400.0  # POST_RETENTION_S: how long the post must stay up
    backoff_base_s: float = 2.0
    backoff_cap_s: float = 300.0
    lease_s: float = 60.0  # how long a worker holds a job without renewing
    poll_s: float = 1.0
    batch: int = 20

    def deadline(self, execute_at: dt.datetime) -> dt.datetime:
        return execute_at + dt.timedelta(seconds=self.deadline_s)

    def overdue(self, execute_at: dt.datetime, now: dt.datetime) -> bool:
        return now > self.deadline(execute_at)

    def no_show(self) -> str:
        return NO_SHOW.format(deadline_s=f"{self.deadline_s:g}")

    def retry_at(self, now: dt.datetime, attempts: int, retry_after: float | None,
                 rng: random.Random | None = None) -> dt.datetime:
        """When a transient failure is tried again: the Bot API's retry_after
        when it gave one, else exponential backoff with jitter."""
        if retry_after is not None:
            delay = max(retry_after, 0.0)
        else:
            delay = min(self.backoff_cap_s, self.backoff_base_s * 2 ** max(attempts - 1, 0))
            delay *= (rng or random).uniform(0.5, 1.0)
        return now + dt.timedelta(seconds=delay)

    def check_plan(self, published_at: dt.datetime, rng: random.Random | None = None) -> list[dt.datetime]:
        """When the proof checks run: `checks` at random times inside the
        retention window, then one at its end; sorted, the last is the end."""
        end = published_at + dt.timedelta(seconds=self.retention_s)
        pick = rng or random
        inside = sorted(published_at + dt.timedelta(seconds=pick.uniform(0, self.retention_s))
                        for _ in range(self.checks))
        return [*inside, end]


def check_cancellable(job_status: str | None) -> None:
    """A target with a post job may be cancelled only while the job is queued."""
    if job_status in STARTED:
        raise Conflict(f"The post job has started (status: {job_status}); the target can no longer be cancelled",
                       code=Reason.POST_JOB_STARTED)


@dataclasses.dataclass(frozen=True)
class Resolution:
    """An admin's verdict on a job in review, checked."""
    outcome: str
    message_url: str | None = None
    message_id: int | None = None
    reason: str | None = None


def valid_resolution(outcome: str, message_url: str, reason: str) -> Resolution:
    if outcome not in RESOLUTIONS:
        raise InvalidInput(f"outcome must be one of {', '.join(RESOLUTIONS)}")
    if outcome == "published":
        url = message_url.strip()
        # Parsed as a URL first (the rule every URL the API takes follows),
        # then matched to the shape of a post's link.
        try:
            found = MESSAGE_URL.fullmatch(domain.valid_http_url(url, "messageUrl"))
        except InvalidInput:
            found = None
        if not found:
            raise InvalidInput("messageUrl must be the post's link, like https://t.me/<channel>/<message id>")
        return Resolution(outcome, message_url=url, message_id=int(found.group(1)))
    if outcome == "failed":
        return Resolution(outcome, reason=domain.valid_text(reason, "reason", domain.REASON_MAX))
    return Resolution(outcome)


def check_retryable(message_url: str | None) -> None:
    """A job whose post is known to be out is never sent again."""
    if message_url:
        raise Conflict(f"The post is out already ({message_url}); resolve the job as published with that link",
                       code=Reason.POST_ALREADY_OUT)


def check_answerable(status: str, accept_by: dt.datetime | None, now: dt.datetime) -> None:
    """The owner's accept or decline: only while the job awaits it, and
    not after its deadline."""
    if status != AWAITING:
        raise Conflict(f"The post job is not awaiting the channel owner's answer (status: {status})",
                       code=Reason.POST_JOB_NOT_AWAITING)
    if accept_by is not None and now >= accept_by:
        raise Conflict(f"The answer was due by {accept_by.astimezone(dt.timezone.utc):%Y-%m-%dT%H:%M:%SZ}; the order"
                       " expires", code=Reason.ANSWER_DEADLINE_PASSED)


def check_in_review(status: str) -> None:
    if status != NEEDS_REVIEW:
        raise Conflict(f"Only a post job in needs_review can be resolved (status: {status})",
                       code=Reason.POST_JOB_NOT_IN_REVIEW)


def valid_job_status_filter(value: str) -> str | None:
    if not value:
        return None
    if value not in JOB_STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(JOB_STATUSES)}")
    return value


def channel_refusal(message: str) -> PreconditionFailed:
    """The bot cannot post in the channel: the channel cannot be listed or approved."""
    return PreconditionFailed(f"The bot cannot post in the channel: {message}", code=Reason.CHANNEL_CANNOT_POST)
