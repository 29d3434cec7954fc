"""What the platform's bot does with each update (docs/design.md, "The
bot's update loop"): `/start <code>` binds the sender's Telegram account, an
order's Accept or Decline button answers the order for its channel's owner.
Each update is handled in one unit of work that also records its update id,
so an update delivered again changes nothing; the answer it owes the sender
is stored with it and marked sent once sent."""
import dataclasses
import datetime as dt
import logging
import re

from common.auth import Actor
from common.db import Database, is_transient
from common.errors import DomainError
from services.campaigns import accounts_store as accounts
from services.campaigns import consent_store as orders
from services.campaigns import publication
from services.campaigns.usecases.accounts import bind_by_code
from services.campaigns.usecases.consent import answer_order

log = logging.getLogger(__name__)

START = re.compile(r"/start(?:@\w+)?(?:\s+(\S+))?\s*", re.S)
CODE = re.compile(r"[A-Za-z0-9_-]{16,64}")
BUTTON = re.compile(r"(accept|decline):([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})")
HOW_TO_LINK = ("This bot links your Telegram account to the ad platform and brings you the orders for your"
               " channels. Open the link the platform gave you (POST /api/me/telegram/link) to link it.")
NOT_THE_OWNER = "Only the channel's owner can answer this order."
UNKNOWN_BUTTON = "This button is no longer valid."
NOT_UNDERSTOOD = "Sorry, that could not be handled."
INVALID_CODE = "This link is not valid. Ask the platform for a new one."


@dataclasses.dataclass(frozen=True)
class Incoming:
    """The parts of a Telegram update the bot acts on."""
    update_id: int
    kind: str  # message | callback_query | other
    telegram_user_id: int | None = None
    username: str | None = None
    text: str = ""
    query_id: str = ""


def incoming(update) -> Incoming:
    """A python-telegram-bot Update as what the bot acts on."""
    if update.message is not None and update.message.from_user is not None:
        user = update.message.from_user
        return Incoming(update.update_id, "message", user.id, user.username, update.message.text or "")
    if update.callback_query is not None:
        query = update.callback_query
        return Incoming(update.update_id, "callback_query", query.from_user.id, query.from_user.username,
                        query.data or "", query.id)
    return Incoming(update.update_id, "other")


def apology(update: Incoming) -> dict | None:
    if update.kind == "message":
        return {"chat_id": update.telegram_user_id, "text": NOT_UNDERSTOOD}
    if update.kind == "callback_query":
        return {"query_id": update.query_id, "text": NOT_UNDERSTOOD}
    return None


def order_buttons(job_id) -> list[tuple[str, str]]:
    return [("Accept", f"accept:{job_id}"), ("Decline", f"decline:{job_id}")]


def _when(moment: dt.datetime | None) -> str:
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC") if moment else "?"


def _price(amount: int, currency: str) -> str:
    return f"{amount / 100:,.2f} {currency}"


def order_text(row) -> str:
    """The order as the owner reads it in the bot, with its deadline."""
    creative = (row.text or "")[:1000]
    return (f"New order for {row.handle}\nPost at: {_when(row.execute_at)}\nPrice: {_price(row.price, row.currency)}"
            f"\nAnswer by: {_when(row.accept_by)}\n\n{creative}")


OUTCOMES = {
    publication.AWAITING: "waiting for your answer",
    publication.QUEUED: "accepted: it will be posted at its time",
    publication.DECLINED: "declined: the advertiser is refunded",
    publication.EXPIRED: "expired without an answer: the advertiser is refunded",
    publication.CANCELLED: "cancelled by the advertiser",
}


def outcome_text(row) -> str:
    outcome = OUTCOMES.get(row.status, f"accepted; now {row.status.replace('_', ' ')}")
    return f"Order for {row.handle}, post at {_when(row.execute_at)}, {_price(row.price, row.currency)}: {outcome}."


class Conversations:
    def __init__(self, db: Database, *, batch: int = 20):
        self.db, self.batch = db, batch

    async def next_offset(self) -> int:
        """getUpdates' offset: after every update handled (confirming them)."""
        async with self.db.single_statement("read_bot_offset") as uow:
            return await accounts.next_offset(uow)

    async def handle(self, update: Incoming, *, now: dt.datetime) -> dict | None:
        """Handles the update once; the answer it owes (sent by the caller,
        then `answered`), or None. An update the bot cannot act on (input
        the database refuses, anything unforeseen) is recorded as handled
        with an apology, so it never blocks the updates after it; only a
        database out of reach is raised, and the update comes again."""
        try:
            async with self.db.unit_of_work("handle_bot_update") as uow:
                if not await accounts.record_update(uow, update.update_id, update.kind):
                    return await accounts.unanswered(uow, update.update_id)  # handled before: its answer is owed
                answer = await self._act(uow, update, now)
                if answer is not None:
                    await accounts.set_answer(uow, update.update_id, answer)
                await uow.commit()
            return answer
        except Exception as error:  # noqa: BLE001 - one bad update must not stop the bot
            if is_transient(error):
                raise
            log.exception("a bot update could not be handled; answered with an apology",
                          extra={"fields": {"update_id": update.update_id, "kind": update.kind}})
        answer = apology(update)
        async with self.db.unit_of_work("skip_bot_update") as uow:
            if await accounts.record_update(uow, update.update_id, update.kind) and answer is not None:
                await accounts.set_answer(uow, update.update_id, answer)
            await uow.commit()
        return answer

    async def _act(self, uow, update: Incoming, now: dt.datetime) -> dict | None:
        if update.kind == "message":
            start = START.fullmatch(update.text.strip())
            if start is None or not start.group(1):
                return {"chat_id": update.telegram_user_id, "text": HOW_TO_LINK}
            if not CODE.fullmatch(start.group(1)):
                return {"chat_id": update.telegram_user_id, "text": INVALID_CODE}
            bound = await bind_by_code(uow, start.group(1), telegram_user_id=update.telegram_user_id,
                                       username=update.username, now=now)
            return {"chat_id": update.telegram_user_id, "text": bound.message}
        if update.kind == "callback_query":
            return {"query_id": update.query_id, "text": await self._press(uow, update, now)}
        return None

    async def _press(self, uow, update: Incoming, now: dt.datetime) -> str:
        """An order's button: counts only from the channel owner's bound account."""
        button = BUTTON.fullmatch(update.text)
        if button is None:
            return UNKNOWN_BUTTON
        action, job_id = button.groups()
        owner = await orders.owner_pressing(uow, job_id, update.telegram_user_id)
        if owner is None:
            return NOT_THE_OWNER
        try:
            moved = await answer_order(uow, Actor(owner, "publisher"), job_id, accept=action == "accept",
                                       reason=publication.DECLINED_IN_TELEGRAM, now=now)
        except DomainError as refusal:  # judged before anything was written
            return refusal.message
        return "Accepted." if moved == publication.QUEUED else "Declined; the advertiser is refunded."

    async def answered(self, update_id: int) -> None:
        async with self.db.single_statement("bot_update_answered") as uow:
            await accounts.answered(uow, update_id)

    async def unanswered(self) -> list:
        """Answers a crash cut off after their update was handled."""
        async with self.db.single_statement("read_unanswered_bot_updates") as uow:
            return await accounts.unanswered_updates(uow, self.batch)

    async def orders_to_show(self) -> list:
        async with self.db.single_statement("read_orders_to_show") as uow:
            return await orders.orders_to_show(uow, batch=self.batch)

    async def order_shown(self, job_id, *, shown: str, chat_id: int | None = None,
                          message_id: int | None = None) -> None:
        async with self.db.single_statement("record_order_shown") as uow:
            await orders.order_shown(uow, job_id, shown=shown, chat_id=chat_id, message_id=message_id)
