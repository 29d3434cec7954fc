"""Payments rules: money, the release split, who may do what, and the
refusals payments speaks. Pure: no I/O, no clock."""
import dataclasses
import hashlib
import json
import re
import uuid

from common.auth import Actor
from common.errors import AlreadyExists, Conflict, Forbidden, InvalidInput, NotFound, PreconditionFailed
from common.reasons import Reason
from common.steps import StepRecord, answer

DEFAULT_CURRENCY = "USD"
MAX_IDEMPOTENCY_KEY = 200
MAX_REFERENCE = 500
INT64_MAX = 2**63 - 1
_CURRENCY = re.compile(r"^[A-Z]{3}$")

# Ledger entry kinds, as docs/api.md lists them.
DEPOSIT, ESCROW_HOLD, ESCROW_REFUND, ESCROW_RELEASE, FEE, WITHDRAWAL = (
    "deposit", "escrow_hold", "escrow_refund", "escrow_release", "fee", "withdrawal")

# Account kinds: a wallet per (user, currency); an escrow account per escrow
# (its target id), holding the escrow's amount while it is held; and per
# currency the platform fee and the external funding source (the only
# account that may go negative: deposits come out of it).
WALLET, ESCROW, PLATFORM_FEE, EXTERNAL = "wallet", "escrow", "platform_fee", "external"
# A user's withdrawals asked for and not yet paid out sit in the user's own
# pending-payouts account (per user and currency: no row shared by every
# withdrawal of the platform).
PENDING_PAYOUT = "pending_payout"
# Ledger transaction kinds of payouts: a request is a 'withdrawal', its
# completion a 'payout' (pending payouts → external), its rejection a
# 'withdrawal_reversal' (whose wallet entry is a positive 'withdrawal').
PAYOUT, WITHDRAWAL_REVERSAL = "payout", "withdrawal_reversal"

# The platform fee and external funding of a currency are this many account
# rows (shards): a release credits one fee shard and a deposit debits one
# funding shard, so concurrent moves rarely want the same row. The
# currency's fee income is the sum over its shards.
LEDGER_SHARDS = 16

HELD, RELEASED, REFUNDED = "held", "released", "refunded"

# Withdrawal: pending → paid | rejected, each move by an admin, once.
PENDING, PAID, REJECTED = "pending", "paid", "rejected"
WITHDRAWAL_STATUSES = (PENDING, PAID, REJECTED)
MAX_DESTINATION = 500
MAX_EXTERNAL_REFERENCE = 500
MAX_REJECTION_REASON = 1000

# HoldEscrow is the step "hold" of a decision, recorded as common/steps.py
# records every step (docs/design.md saga rules 1, 3, 7): 'held', or 'refused'
# with the reason (insufficient_funds).
HOLD_STEP = "hold"
HOLD_DONE = frozenset({"held"})

# Who may call what (docs/design.md "Identity and trust"; API.md Payments).
DEPOSITORS = ("admin",)
ESCROW_OPERATORS = ("system", "admin")
AUDITORS = ("admin", "system")
WITHDRAWERS = ("publisher",)
PAYOUT_OPERATORS = ("admin",)


class InsufficientFunds(PreconditionFailed):
    """The advertiser's spendable balance does not cover the hold; nothing
    moved, and the refusal is final for this decision."""

    code = Reason.INSUFFICIENT_FUNDS


class EscrowClosed(PreconditionFailed):
    """The target's escrow was already released or refunded; it can never be
    held again nor moved the other way."""

    code = Reason.ESCROW_CLOSED


class EscrowExists(AlreadyExists):
    """The target already has an escrow held by another decision or on
    other terms."""

    code = Reason.ESCROW_EXISTS


class IdempotencyKeyReused(AlreadyExists):
    """The idempotency key was used before with a different request."""

    code = Reason.IDEMPOTENCY_KEY_REUSED


class WalletNotFound(NotFound):
    """Money sent to a user who has no wallet: refused, so a typo in a user
    id strands nothing."""

    code = Reason.WALLET_NOT_FOUND


class WithdrawalNotFound(NotFound):
    """No withdrawal has this id."""

    code = Reason.WITHDRAWAL_NOT_FOUND


class WithdrawalNotPending(Conflict):
    """The withdrawal is paid or rejected already: another completion or
    rejection won, and it cannot move again."""

    code = Reason.WITHDRAWAL_NOT_PENDING


class EscrowNotFound(NotFound):
    """The target has no escrow."""

    code = Reason.ESCROW_NOT_FOUND


@dataclasses.dataclass(frozen=True)
class HoldTerms:
    """What a hold asks for; a repeat must ask for exactly the same."""
    target_id: str
    decision_id: str
    advertiser_id: str
    publisher_id: str
    amount: int
    currency: str


def currency_to_read(value: str, platform: str = DEFAULT_CURRENCY) -> str:
    """The currency of a wallet or ledger to read: the platform's when empty.
    Another code is read as stored (money left from before the one-currency
    rule stays visible); no money moves in it (currency_of)."""
    code = value or platform
    if not _CURRENCY.match(code):
        raise InvalidInput("currency must be a three-letter ISO 4217 code")
    return code


def currency_of(value: str, platform: str = DEFAULT_CURRENCY) -> str:
    """The currency money moves in: the platform trades in one
    (PLATFORM_CURRENCY), meant when empty; another code is refused, never
    credited, held or withdrawn as the platform's."""
    code = currency_to_read(value, platform)
    if code != platform:
        raise PreconditionFailed(f"currency must be {platform}: the platform trades in {platform} only",
                                 code=Reason.CURRENCY_NOT_SUPPORTED)
    return code


def positive_amount(value, field: str = "amount") -> int:
    """Money is integer minor units, strictly positive; floats are refused."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{field} must be an integer number of minor units")
    if not 0 < value <= INT64_MAX:
        raise InvalidInput(f"{field} must be positive")
    return value


def idempotency_key(value: str) -> str:
    if "\x00" in value:
        raise InvalidInput("idempotency_key must not contain NUL characters")
    if not value or not value.strip():
        raise InvalidInput("idempotency_key is required")
    if len(value) > MAX_IDEMPOTENCY_KEY:
        raise InvalidInput(f"idempotency_key must be at most {MAX_IDEMPOTENCY_KEY} characters")
    return value


def reference(value: str) -> str:
    if "\x00" in value:
        raise InvalidInput("reference must not contain NUL characters")
    if len(value) > MAX_REFERENCE:
        raise InvalidInput(f"reference must be at most {MAX_REFERENCE} characters")
    return value


def text(value: str, field: str, limit: int) -> str:
    """Required free text: not blank, no NUL, at most `limit` characters."""
    if "\x00" in value:
        raise InvalidInput(f"{field} must not contain NUL characters")
    if not value.strip():
        raise InvalidInput(f"{field} is required")
    if len(value) > limit:
        raise InvalidInput(f"{field} must be at most {limit} characters")
    return value


def withdrawal_status(value: str) -> str:
    """A status filter: empty for any, else one of the statuses."""
    if value and value not in WITHDRAWAL_STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(WITHDRAWAL_STATUSES)}")
    return value


@dataclasses.dataclass(frozen=True)
class WithdrawalTerms:
    """What a withdrawal asks for; a repeat with its key must ask for
    exactly the same."""
    user_id: str
    amount: int
    currency: str
    destination: str


def judge_withdrawal_replay(asked: WithdrawalTerms, stored: WithdrawalTerms) -> None:
    """A second request with a key the user used before is the same
    request, answered with the first's withdrawal, or refused."""
    if stored != asked:
        raise IdempotencyKeyReused("idempotency key was used with a different withdrawal")


def judge_withdrawal_close(withdrawal_id: str, status: str | None) -> None:
    """Why a guarded close of a withdrawal moved nothing: there is none, or
    it is not pending any more."""
    if status is None:
        raise WithdrawalNotFound(f"no withdrawal {withdrawal_id}")
    raise WithdrawalNotPending(f"withdrawal {withdrawal_id} is {status}, not pending")


def credited(balance: int, amount: int) -> int:
    """The balance after a credit; money is int64, so beyond it is refused."""
    if balance + amount > INT64_MAX:
        raise InvalidInput("the amount would take the balance beyond the int64 range")
    return balance + amount


def release_split(amount: int, fee_bps: int) -> tuple[int, int]:
    """(publisher payout, platform fee). The fee is floored, so the parts
    always sum to the amount and the platform never takes a fraction more."""
    if not 0 <= fee_bps <= 10_000:
        raise ValueError("fee_bps must be within 0..10000")
    fee = amount * fee_bps // 10_000
    return amount - fee, fee


# The refusal's text, (balance, required). The hold statement fills it in
# with SQL format() as it records the refusal for the decision, and a
# repeat answers the recorded text.
INSUFFICIENT_FUNDS = "Insufficient funds: balance %s, required %s"


def ledger_shard(key: str) -> int:
    """The fee or funding shard a move uses, from the UUID it is about (the
    target of a release, the transaction of a deposit): spread evenly, and
    the same for a repeat."""
    return uuid.UUID(key).int % LEDGER_SHARDS


def assert_may_read_wallet(actor: Actor, user_id: str) -> None:
    """Users see their own wallet; admin and system see any."""
    if actor.role not in AUDITORS and actor.id != user_id:
        raise Forbidden("only the wallet's owner or an admin may read it")


def assert_may_list_withdrawals(actor: Actor, user_id: str) -> None:
    """A user lists their own withdrawals; admin and system list anyone's
    and everyone's."""
    if actor.role not in AUDITORS and (not user_id or actor.id != user_id):
        raise Forbidden("only the withdrawals' owner or an admin may list them")


def assert_may_read_escrow(actor: Actor, advertiser_id: str, publisher_id: str) -> None:
    """The escrow's advertiser or publisher, admin, system."""
    if actor.role not in AUDITORS and actor.id not in (advertiser_id, publisher_id):
        raise Forbidden("only the escrow's advertiser or publisher or an admin may read it")


def deposit_fingerprint(user_id: str, amount: int, currency: str, ref: str) -> str:
    """What makes two deposits with one key "the same request"."""
    body = json.dumps([user_id, amount, currency, ref], separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()


@dataclasses.dataclass(frozen=True)
class EscrowState:
    terms: HoldTerms
    status: str


PROCEED, SAME_ESCROW = "proceed", "same_escrow"


def judge_hold(asked: HoldTerms, recorded: StepRecord | None, escrow: EscrowState | None) -> str:
    """What a hold does given what is already known (docs/design.md saga rules
    3 and 7): PROCEED to move money, SAME_ESCROW to answer with the existing
    one, or raise the refusal. A recorded refusal is answered as recorded,
    never by looking at the wallet again."""
    if recorded is not None:
        answer(recorded, decision_id=asked.decision_id, target_id=asked.target_id, done=HOLD_DONE,
               refusal_kinds={InsufficientFunds.code: InsufficientFunds})
    if escrow is not None:
        if escrow.status != HELD:
            raise EscrowClosed(f"escrow for target {asked.target_id} is {escrow.status}")
        if escrow.terms != asked:
            raise EscrowExists(f"target {asked.target_id} already has an escrow on other terms")
        return SAME_ESCROW
    return PROCEED


def judge_close(target_id: str, status: str | None, wanted: str) -> str:
    """Release or refund of a target's escrow: PROCEED when held, the
    recorded result (SAME_ESCROW) for a repeat, escrow_closed when the other
    move already happened. A missing escrow is NotFound for a release; the
    caller answers "nothing to refund" for a refund."""
    if status is None:
        raise EscrowNotFound(f"target {target_id} has no escrow")
    if status == HELD:
        return PROCEED
    if status == wanted:
        return SAME_ESCROW
    raise EscrowClosed(f"escrow for target {target_id} is already {status}")
