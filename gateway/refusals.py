"""Every refusal each route can answer, as data: ONE table, route name →
its refusals (API.md "Errors"). The OpenAPI document's error responses are
generated from it (gateway/openapi.py), and the gateway does not start
while a route has no row or a row no route, so routes and document cannot
drift apart; the conformance test holds the live answers to the document.

A refusal from a service gets its HTTP status from the gateway's one
mapping (errors.HTTP_STATUS_OF), by its gRPC status and reason."""
import dataclasses

import grpc

from common.reasons import Reason
from gateway.errors import HTTP_STATUS_OF, http_error_for
from gateway.limits import MAX_JSON_DEPTH, METHODS_WITH_BODY, PAYLOAD_TOO_LARGE
from gateway.server import HEADERS_TOO_LARGE, MAX_HEADER_BYTES

S = grpc.StatusCode


@dataclasses.dataclass(frozen=True)
class Refusal:
    status: int  # HTTP
    code: str  # the body's error.code
    when: str  # what it means, for the document


def by_service(status: grpc.StatusCode, code: str, when: str) -> Refusal:
    """A service's refusal, answered as the gateway maps it."""
    return Refusal(http_error_for(status, code, when).status, code, when)


# ---- what the gateway refuses by itself --------------------------------------
INPUT = Refusal(400, Reason.INVALID_INPUT, "Malformed input: a bad id, a missing or ill-formed field, parameter or "
                                           "header, a body that is not a JSON object, a cursor that is not ours, a "
                                           "value out of what the service can store")
TOKEN = Refusal(401, Reason.UNAUTHENTICATED, "No bearer token, or a bad or expired one")
ROLE = Refusal(403, Reason.FORBIDDEN, "The token's role may not use this route")

# Refused by the gateway's limits before any route is chosen (API.md
# "Gateway limits"): every operation can answer these.
TOO_LARGE = Refusal(413, PAYLOAD_TOO_LARGE, "The body exceeds GATEWAY_MAX_BODY_BYTES (1 MiB by default); refused "
                                            "before it is parsed or the token checked")
HEADERS_TOO_BIG = Refusal(431, HEADERS_TOO_LARGE, f"The request line and headers exceed {MAX_HEADER_BYTES // 1024} KiB")
TOO_DEEP = Refusal(400, Reason.INVALID_INPUT, f"A JSON body nests arrays and objects deeper than {MAX_JSON_DEPTH}")


def of_every_route(method: str) -> tuple[Refusal, ...]:
    """What the limits answer for any operation of this method."""
    return (TOO_LARGE, HEADERS_TOO_BIG, *((TOO_DEEP,) if method.upper() in METHODS_WITH_BODY else ()))


# A service cannot be reached, or did not answer in time: every status the
# mapping answers 503 for, each under its name.
SERVICE_DOWN = tuple(
    Refusal(503, status.name.lower(), "A service behind the gateway is unavailable; try again")
    for (status, reason), http in HTTP_STATUS_OF.items() if http == 503 and reason is None)

# ---- what services refuse ----------------------------------------------------
NOT_OWNER = by_service(S.PERMISSION_DENIED, Reason.FORBIDDEN, "Not the owner, or the role may not make this move")
NOT_FOUND = by_service(S.NOT_FOUND, Reason.NOT_FOUND, "No such resource (or a target not in the campaign of the path)")
INVALID_TRANSITION = by_service(S.FAILED_PRECONDITION, Reason.INVALID_TRANSITION,
                                "The current status does not allow this move")
CONCURRENT_CHANGE = by_service(S.ABORTED, Reason.CONFLICT, "A concurrent change won; try again")
BEING_APPROVED = by_service(S.ABORTED, Reason.TARGET_BEING_APPROVED,
                            "The target is being approved; try again when its approve has ended")
NO_CREATIVES = by_service(S.FAILED_PRECONDITION, Reason.NO_CREATIVES, "The campaign has no creative")
CAMPAIGN_NOT_ACTIVE = by_service(S.FAILED_PRECONDITION, Reason.CAMPAIGN_NOT_ACTIVE, "The campaign is not active")
CHANNEL_NOT_APPROVED = by_service(S.FAILED_PRECONDITION, Reason.CHANNEL_NOT_APPROVED, "The channel is not approved")
SCHEDULED_TOO_SOON = by_service(S.FAILED_PRECONDITION, Reason.SCHEDULED_TOO_SOON,
                                "scheduledAt is sooner than the minimum lead time")
SCHEDULING = (
    SCHEDULED_TOO_SOON,
    by_service(S.FAILED_PRECONDITION, Reason.SLOT_TAKEN, "The channel has a post at that time already"),
    by_service(S.FAILED_PRECONDITION, Reason.BEYOND_BOOKING_HORIZON, "scheduledAt is further ahead than posts are booked"),
    by_service(S.INVALID_ARGUMENT, Reason.INVALID_TIME, "scheduledAt is not a time a post can be booked at"),
)
TARGET_CANCELLED = by_service(S.FAILED_PRECONDITION, Reason.TARGET_CANCELLED, "The target was cancelled")
CHANNEL_CANNOT_POST = by_service(
    S.FAILED_PRECONDITION, Reason.CHANNEL_CANNOT_POST,
    "The bot cannot post in the channel (not found, not an administrator that can post, or blocked)")
CURRENCY_NOT_SUPPORTED = by_service(S.FAILED_PRECONDITION, Reason.CURRENCY_NOT_SUPPORTED,
                                    "A currency other than the platform's")
NOT_CHANNEL_OWNER = by_service(S.PERMISSION_DENIED, Reason.FORBIDDEN, "Not the channel's owner")
NOT_JOB_OWNER = by_service(S.PERMISSION_DENIED, Reason.FORBIDDEN, "Not the owner of the job's channel")

# Listing a channel, resubmitting or approving one asks Telegram who owns
# the chat (docs/design.md "Listing a channel").
PROVING_OWNERSHIP = (
    by_service(S.FAILED_PRECONDITION, Reason.TELEGRAM_NOT_LINKED,
               "The channel's owner has no Telegram account bound (POST /api/me/telegram/link)"),
    by_service(S.FAILED_PRECONDITION, Reason.CHANNEL_NOT_FOUND, "Telegram knows no chat by the channel's handle"),
    by_service(S.PERMISSION_DENIED, Reason.NOT_CHANNEL_ADMIN,
               "The owner's Telegram account is not the chat's creator or an administrator"),
    CHANNEL_CANNOT_POST,
)
ALREADY_LISTED = by_service(S.ALREADY_EXISTS, Reason.CHANNEL_ALREADY_LISTED,
                            "A live listing (pending, approved or suspended) of the same chat, or of the same handle "
                            "in any case, exists")

# The channel owner's answer to a post job awaiting it.
_ANSWER = (INPUT, TOKEN, ROLE, NOT_JOB_OWNER, NOT_FOUND, by_service(
    S.ABORTED, Reason.POST_JOB_NOT_AWAITING, "The post job is not awaiting its owner's answer"), by_service(
    S.ABORTED, Reason.ANSWER_DEADLINE_PASSED, "The answer came after acceptBy; the job expires"), *SERVICE_DOWN)

_CAMPAIGN_MOVE = (INPUT, TOKEN, ROLE, NOT_OWNER, NOT_FOUND, INVALID_TRANSITION, CONCURRENT_CHANGE, *SERVICE_DOWN)
_AN_ADMINS_READ = (INPUT, TOKEN, ROLE, *SERVICE_DOWN)

# An approve ends refused with the reason of the saga step that refused it.
_APPROVE_REFUSALS = (
    by_service(S.FAILED_PRECONDITION, Reason.TARGET_NOT_SUBMITTED, "The target is not submitted"),
    CAMPAIGN_NOT_ACTIVE, NO_CREATIVES, CHANNEL_NOT_APPROVED, SCHEDULED_TOO_SOON, TARGET_CANCELLED,
    by_service(S.FAILED_PRECONDITION, Reason.TARGET_NOT_RESERVED, "The target is not reserved by this approve"),
    by_service(S.FAILED_PRECONDITION, Reason.DECISION_RELEASED, "This approve released the target already"),
    by_service(S.FAILED_PRECONDITION, Reason.ESCROW_CLOSED, "The target's escrow was released or refunded already"),
    by_service(S.FAILED_PRECONDITION, Reason.ESCROW_EXISTS, "The target has an escrow on other terms"),
    by_service(S.FAILED_PRECONDITION, Reason.DECISION_REUSED, "The decision was made for another target"),
    by_service(S.FAILED_PRECONDITION, Reason.APPROVE_REFUSED, "The approve was refused at its first step"),
    by_service(S.FAILED_PRECONDITION, Reason.APPROVE_FAILED, "The approve failed for another reason"),
    by_service(S.FAILED_PRECONDITION, Reason.INSUFFICIENT_FUNDS, "The advertiser's wallet cannot cover the price"),
)

_WITHDRAWAL_MOVE = (
    INPUT, TOKEN, ROLE, by_service(S.NOT_FOUND, Reason.WITHDRAWAL_NOT_FOUND, "No withdrawal has this id"),
    by_service(S.ABORTED, Reason.WITHDRAWAL_NOT_PENDING, "The withdrawal is paid or rejected already"),
    CONCURRENT_CHANGE, *SERVICE_DOWN)

REFUSALS: dict[str, tuple[Refusal, ...]] = {
    # health
    "live": (),
    "ready": (INPUT, TOKEN, ROLE),  # with ?details=true only; a service down answers 503 with the Ready body
    # Telegram accounts
    "create_telegram_link": (TOKEN, *SERVICE_DOWN),
    "telegram_account": (TOKEN, *SERVICE_DOWN),
    "unlink_telegram_account": (TOKEN, *SERVICE_DOWN),
    # channels
    "create_channel": (INPUT, TOKEN, ROLE, CURRENCY_NOT_SUPPORTED, *PROVING_OWNERSHIP, ALREADY_LISTED, *SERVICE_DOWN),
    "list_channels": (INPUT, TOKEN, *SERVICE_DOWN),
    "get_channel": (INPUT, TOKEN, NOT_FOUND, *SERVICE_DOWN),
    "update_channel": (INPUT, TOKEN, ROLE, NOT_CHANNEL_OWNER, NOT_FOUND, *SERVICE_DOWN),
    "resubmit_channel": (INPUT, TOKEN, ROLE, NOT_CHANNEL_OWNER, NOT_FOUND, by_service(
        S.FAILED_PRECONDITION, Reason.INVALID_TRANSITION, "The channel is neither rejected nor suspended"),
        *PROVING_OWNERSHIP, ALREADY_LISTED, CONCURRENT_CHANGE, *SERVICE_DOWN),
    "approve_channel": (INPUT, TOKEN, ROLE, NOT_FOUND, INVALID_TRANSITION, by_service(
        S.FAILED_PRECONDITION, Reason.INVALID_TRANSITION, "The handle names another chat now than when it was listed"),
        *PROVING_OWNERSHIP, *SERVICE_DOWN),
    "reject_channel": (INPUT, TOKEN, ROLE, NOT_FOUND, INVALID_TRANSITION, *SERVICE_DOWN),
    # campaigns
    "create_campaign": (INPUT, TOKEN, ROLE, *SERVICE_DOWN),
    "list_campaigns": (INPUT, TOKEN, ROLE, *SERVICE_DOWN),
    "get_campaign": (INPUT, TOKEN, ROLE, NOT_OWNER, NOT_FOUND, *SERVICE_DOWN),
    "add_creative": (INPUT, TOKEN, ROLE, NOT_OWNER, NOT_FOUND, INVALID_TRANSITION, *SERVICE_DOWN),
    "activate_campaign": (*_CAMPAIGN_MOVE, NO_CREATIVES, by_service(
        S.FAILED_PRECONDITION, Reason.INVALID_DATES, "startAt is not before endAt, or endAt is past")),
    "pause_campaign": _CAMPAIGN_MOVE,
    "resume_campaign": _CAMPAIGN_MOVE,
    "cancel_campaign": _CAMPAIGN_MOVE,
    "complete_campaign": (*_CAMPAIGN_MOVE, by_service(
        S.ABORTED, Reason.CAMPAIGN_HAS_OPEN_TARGETS, "The campaign has targets that are not settled yet")),
    # targets
    "create_target": (INPUT, TOKEN, ROLE, NOT_OWNER, NOT_FOUND, *SCHEDULING, by_service(
        S.FAILED_PRECONDITION, Reason.CAMPAIGN_CLOSED, "The campaign is cancelled or completed"), *SERVICE_DOWN),
    "list_targets": (INPUT, TOKEN, ROLE, NOT_OWNER, NOT_FOUND, *SERVICE_DOWN),
    "get_target": (INPUT, TOKEN, ROLE, NOT_OWNER, NOT_FOUND, *SERVICE_DOWN),
    "submit_target": (INPUT, TOKEN, ROLE, NOT_OWNER, NOT_FOUND, CAMPAIGN_NOT_ACTIVE, INVALID_TRANSITION,
                      CHANNEL_NOT_APPROVED, NO_CREATIVES, *SCHEDULING, BEING_APPROVED, CONCURRENT_CHANGE,
                      *SERVICE_DOWN),
    "cancel_target": (INPUT, TOKEN, ROLE, NOT_OWNER, NOT_FOUND, INVALID_TRANSITION, BEING_APPROVED, by_service(
        S.ABORTED, Reason.POST_JOB_STARTED, "The target's post job has started; the post's outcome decides now"),
        *SERVICE_DOWN),
    # moderation
    "queue": _AN_ADMINS_READ,
    "approve": (INPUT, TOKEN, ROLE, NOT_FOUND, *_APPROVE_REFUSALS, BEING_APPROVED, CONCURRENT_CHANGE, *SERVICE_DOWN),
    "reject": (INPUT, TOKEN, ROLE, NOT_FOUND, INVALID_TRANSITION, BEING_APPROVED, CONCURRENT_CHANGE,
               by_service(S.UNAVAILABLE, Reason.UNAVAILABLE,
                          "The rejection is still being carried out; GET the decision for its end"),
               *SERVICE_DOWN),
    "decision": (*_AN_ADMINS_READ, NOT_FOUND),
    "target_decisions": _AN_ADMINS_READ,
    # publication
    "channel_posts": (INPUT, TOKEN, by_service(S.PERMISSION_DENIED, Reason.FORBIDDEN, "Not the channel's owner, "
                                               "nor an admin"), NOT_FOUND, *SERVICE_DOWN),
    "post_jobs": _AN_ADMINS_READ,
    "resolve_post_job": (INPUT, TOKEN, ROLE, NOT_FOUND, by_service(
        S.ABORTED, Reason.POST_JOB_NOT_IN_REVIEW, "The post job is not in needs_review"), by_service(
        S.ABORTED, Reason.POST_ALREADY_OUT, "A retry of a job whose post is known to be out"), *SERVICE_DOWN),
    "accept_post_job": _ANSWER,
    "decline_post_job": _ANSWER,
    # outbox
    "dead_letters": _AN_ADMINS_READ,
    "retry_dead_letter": (INPUT, TOKEN, ROLE, Refusal(404, Reason.NOT_FOUND, "That outbox has no dead letter with this "
                                                                          "id (delivered, pending or retried already)"),
                          *SERVICE_DOWN),
    # payments
    "deposit": (INPUT, TOKEN, ROLE, CURRENCY_NOT_SUPPORTED,
                by_service(S.NOT_FOUND, Reason.WALLET_NOT_FOUND, "The user has no wallet"),
                by_service(S.ALREADY_EXISTS, Reason.IDEMPOTENCY_KEY_REUSED,
                           "The Idempotency-Key was used before with another body"),
                CONCURRENT_CHANGE, *SERVICE_DOWN),
    "own_wallet": (TOKEN, *SERVICE_DOWN),
    "own_ledger": (INPUT, TOKEN, *SERVICE_DOWN),
    "wallet": _AN_ADMINS_READ,
    "escrow": (INPUT, TOKEN, by_service(S.PERMISSION_DENIED, Reason.FORBIDDEN, "Not the target's advertiser or "
                                        "publisher, nor an admin"),
               by_service(S.NOT_FOUND, Reason.ESCROW_NOT_FOUND, "The target has no escrow"), *SERVICE_DOWN),
    # payouts
    "request_withdrawal": (INPUT, TOKEN, ROLE, CURRENCY_NOT_SUPPORTED,
                           by_service(S.FAILED_PRECONDITION, Reason.INSUFFICIENT_FUNDS,
                                      "The wallet's spendable balance cannot cover the amount"),
                           by_service(S.ALREADY_EXISTS, Reason.IDEMPOTENCY_KEY_REUSED,
                                      "The Idempotency-Key was used before with another body"),
                           CONCURRENT_CHANGE, *SERVICE_DOWN),
    "own_withdrawals": (INPUT, TOKEN, *SERVICE_DOWN),
    "withdrawals": _AN_ADMINS_READ,
    "complete_withdrawal": _WITHDRAWAL_MOVE,
    "reject_withdrawal": _WITHDRAWAL_MOVE,
}
