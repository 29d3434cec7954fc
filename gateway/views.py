"""The JSON shapes of API.md and their translation from protos. camelCase
on the wire; RFC 3339 UTC timestamps ending in `Z`; empty proto strings and
unset timestamps of optional fields become null."""
from typing import Literal

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class ApiModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


def _ts(message, field: str) -> str | None:
    return getattr(message, field).ToJsonString() if message.HasField(field) else None


def _at(message, field: str) -> str:
    return getattr(message, field).ToJsonString()


class Page(ApiModel):
    next_cursor: str | None


def next_cursor(reply) -> str | None:
    return reply.next_cursor or None


class Channel(ApiModel):
    id: str
    owner_id: str
    title: str
    handle: str
    telegram_chat_id: int | None  # the Telegram chat, known from listing; null for a listing never verified
    price_per_post: int
    currency: str
    auto_accept: bool  # approved posts are queued without the owner's answer
    status: str  # pending | approved | rejected | suspended
    rejection_reason: str | None  # why it was rejected or suspended
    verified_at: str | None  # when the owner's Telegram account was last proven an administrator of the chat
    created_at: str


class ChannelPage(Page):
    items: list[Channel]


def channel(c) -> Channel:
    return Channel(id=c.id, owner_id=c.owner_id, title=c.title, handle=c.handle, telegram_chat_id=c.chat_id or None,
                   price_per_post=c.price_per_post, currency=c.currency, auto_accept=c.auto_accept, status=c.status,
                   rejection_reason=c.rejection_reason or None, verified_at=_ts(c, "verified_at"),
                   created_at=_at(c, "created_at"))


class Creative(ApiModel):
    id: str
    text: str
    media_url: str | None


def creative(c) -> Creative:
    return Creative(id=c.id, text=c.text, media_url=c.media_url or None)


class Campaign(ApiModel):
    id: str
    advertiser_id: str
    name: str
    status: str
    start_at: str | None
    end_at: str | None
    creatives: list[Creative]
    created_at: str
    updated_at: str


class CampaignPage(Page):
    items: list[Campaign]


def campaign(c) -> Campaign:
    return Campaign(id=c.id, advertiser_id=c.advertiser_id, name=c.name, status=c.status,
                    start_at=_ts(c, "start_at"), end_at=_ts(c, "end_at"),
                    creatives=[creative(x) for x in c.creatives],
                    created_at=_at(c, "created_at"), updated_at=_at(c, "updated_at"))


class PostJob(ApiModel):
    id: str
    execute_at: str
    # awaiting_publisher | queued | publishing | published | verified | cancelled | failed | needs_review |
    # declined | expired
    status: str
    accept_by: str | None  # the owner answers before this, or the job expires; null for an auto-accepted job
    answered_at: str | None  # when the owner accepted or declined
    decline_reason: str | None  # the owner's reason, once declined
    message_url: str | None
    published_at: str | None
    verified_at: str | None
    failure_reason: str | None


def post_job(j) -> PostJob:
    return PostJob(id=j.id, execute_at=_at(j, "execute_at"), status=j.status, accept_by=_ts(j, "accept_by"),
                   answered_at=_ts(j, "answered_at"), decline_reason=j.decline_reason or None,
                   message_url=j.message_url or None, published_at=_ts(j, "published_at"),
                   verified_at=_ts(j, "verified_at"), failure_reason=j.failure_reason or None)


class PostJobItem(ApiModel):
    target_id: str
    campaign_id: str
    post_job: PostJob
    price: int
    currency: str


class PostJobPage(Page):
    items: list[PostJobItem]


def post_job_item(i) -> PostJobItem:
    return PostJobItem(target_id=i.target_id, campaign_id=i.campaign_id, post_job=post_job(i.post_job),
                       price=i.price, currency=i.currency)


class Target(ApiModel):
    id: str
    campaign_id: str
    channel_id: str
    scheduled_at: str
    price: int
    currency: str
    status: str
    moderated_by: str | None
    moderated_at: str | None
    moderation_reason: str | None
    post_job: PostJob | None


class TargetPage(Page):
    items: list[Target]


def _target_fields(t) -> dict:
    job = t.post_job if t.HasField("post_job") and t.post_job.id else None
    return dict(
        id=t.id, campaign_id=t.campaign_id, channel_id=t.channel_id, scheduled_at=_at(t, "scheduled_at"),
        price=t.price, currency=t.currency, status=t.status, moderated_by=t.moderated_by or None,
        moderated_at=_ts(t, "moderated_at"), moderation_reason=t.moderation_reason or None,
        post_job=post_job(job) if job else None)


def target(t) -> Target:
    return Target(**_target_fields(t))


class QueueItem(Target):
    """A submitted target with what a moderator needs to decide."""
    channel: Channel | None
    creatives: list[Creative]
    campaign_name: str
    advertiser_id: str


class QueuePage(Page):
    items: list[QueueItem]


def queue_item(item) -> QueueItem:
    return QueueItem(**_target_fields(item.target),
                     channel=channel(item.channel) if item.HasField("channel") else None,
                     creatives=[creative(x) for x in item.creatives],
                     campaign_name=item.campaign_name, advertiser_id=item.advertiser_id)


class Decision(ApiModel):
    target_id: str
    decision_id: str
    decision: str
    status: str
    reason: str | None
    post_job_id: str | None
    escrow_id: str | None


def decision(d) -> Decision:
    return Decision(target_id=d.target_id, decision_id=d.decision_id, decision=d.decision, status=d.status,
                    reason=d.reason or None, post_job_id=d.post_job_id or None, escrow_id=d.escrow_id or None)


class PastDecision(Decision):
    """A decision in a target's history: who made it and when."""
    moderator_id: str | None
    decided_at: str | None


class PastDecisionPage(Page):
    items: list[PastDecision]


def past_decision(d) -> PastDecision:
    return PastDecision(**decision(d).model_dump(), moderator_id=d.moderator_id or None,
                        decided_at=_ts(d, "decided_at"))


class Approved(ApiModel):
    ok: bool = True
    target_id: str
    status: str = "approved"
    post_job_id: str | None
    escrow_id: str | None
    already_approved: bool


class Approving(ApiModel):
    ok: bool = True
    target_id: str
    status: str = "approving"
    decision_id: str


class TelegramLink(ApiModel):
    code: str  # single use; the bot binds it to the Telegram user who sends /start <code>
    start_link: str  # https://t.me/<bot username>?start=<code>
    expires_at: str


def telegram_link(reply) -> TelegramLink:
    return TelegramLink(code=reply.code, start_link=reply.start_link, expires_at=_at(reply, "expires_at"))


class LinkedTelegramAccount(ApiModel):
    """The Telegram account bound to the caller."""
    linked: Literal[True]
    telegram_user_id: int
    username: str | None  # without @; null when the account has none
    linked_at: str


class UnlinkedTelegramAccount(ApiModel):
    """No Telegram account is bound to the caller: exactly `{"linked": false}`."""
    model_config = ConfigDict(extra="forbid")
    linked: Literal[False]


def telegram_account(reply) -> LinkedTelegramAccount | UnlinkedTelegramAccount:
    if not reply.linked:
        return UnlinkedTelegramAccount(linked=False)
    return LinkedTelegramAccount(linked=True, telegram_user_id=reply.telegram_user_id,
                                 username=reply.username or None, linked_at=_at(reply, "linked_at"))


class Wallet(ApiModel):
    user_id: str
    currency: str
    balance: int
    held: int
    pending_payout: int


def wallet(w) -> Wallet:
    return Wallet(user_id=w.user_id, currency=w.currency, balance=w.balance, held=w.held,
                  pending_payout=w.pending_payout)


class Deposit(ApiModel):
    transaction_id: str
    wallet: Wallet


class LedgerEntry(ApiModel):
    id: str
    transaction_id: str
    kind: str
    amount: int
    balance_after: int
    reference: str | None
    created_at: str


class LedgerPage(Page):
    items: list[LedgerEntry]


def ledger_entry(e) -> LedgerEntry:
    return LedgerEntry(id=e.id, transaction_id=e.transaction_id, kind=e.kind, amount=e.amount,
                       balance_after=e.balance_after, reference=e.reference or None,
                       created_at=_at(e, "created_at"))


class Escrow(ApiModel):
    id: str
    target_id: str
    advertiser_id: str
    publisher_id: str
    amount: int
    currency: str
    status: str
    created_at: str
    updated_at: str


def escrow(e) -> Escrow:
    return Escrow(id=e.id, target_id=e.target_id, advertiser_id=e.advertiser_id, publisher_id=e.publisher_id,
                  amount=e.amount, currency=e.currency, status=e.status, created_at=_at(e, "created_at"),
                  updated_at=_at(e, "updated_at"))


class Withdrawal(ApiModel):
    id: str
    user_id: str
    amount: int
    currency: str
    destination: str
    status: str
    external_reference: str | None
    reason: str | None
    created_at: str
    updated_at: str


class WithdrawalPage(Page):
    items: list[Withdrawal]


def withdrawal(w) -> Withdrawal:
    return Withdrawal(id=w.id, user_id=w.user_id, amount=w.amount, currency=w.currency, destination=w.destination,
                      status=w.status, external_reference=w.external_reference or None, reason=w.reason or None,
                      created_at=_at(w, "created_at"), updated_at=_at(w, "updated_at"))


class DeadLetter(ApiModel):
    """An outbox message its relay gave up on after its last attempt."""
    service: str
    id: int
    topic: str
    aggregate_id: str
    attempts: int
    last_error: str | None
    created_at: str


class DeadLetterPage(Page):
    items: list[DeadLetter]


def dead_letter(service: str, m) -> DeadLetter:
    return DeadLetter(service=service, id=m.id, topic=m.topic, aggregate_id=m.aggregate_id, attempts=m.attempts,
                      last_error=m.last_error or None, created_at=_at(m, "created_at"))


class Requeued(ApiModel):
    service: str
    id: int
    status: str = "pending"
