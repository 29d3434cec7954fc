"""The platform's Telegram bot: its own process (`python -m
services.campaigns.bot`, one per replica), of which exactly one polls
Telegram at a time, the holder of the bot's leader lock (common/holders.py;
Telegram refuses two pollers of one bot). The leader long-polls getUpdates
and hands each update to Conversations (handled once, whatever crashes),
sends the answers it owes, and keeps each order message the owners got in
step with its job: sent with Accept / Decline buttons while it awaits, then
edited to show the outcome (docs/design.md, "The bot's update loop")."""
import asyncio
import json
import logging

from common import holders
from common.bootstrap import open_database, run_process
from common.timestamps import utcnow
from services.campaigns import publication
from services.campaigns.settings import TelegramSettings
from services.campaigns.telegram import ChannelRefused, TelegramChannels, TransientChannelError
from services.campaigns.usecases.conversations import Conversations, incoming, order_buttons, order_text, outcome_text

log = logging.getLogger(__name__)

FOLLOWER_WAIT_S = 2.0  # how often a process that does not lead asks again
ERROR_WAIT_S = 2.0


class Bot:
    def __init__(self, conversations: Conversations, channels: TelegramChannels, leadership: holders.Leadership, *,
                 poll_timeout_s: int, orders_every_s: float = 1.0):
        self.conversations, self.channels, self.leadership = conversations, channels, leadership
        self.poll_timeout_s, self.orders_every_s = poll_timeout_s, orders_every_s
        self.leading = False
        self.stopping = asyncio.Event()

    async def run_once(self) -> int:
        """One long poll as the leader and its updates, after the answers a
        crash cut off (here, never beside an update being answered). Returns
        how many updates it handled."""
        await self.answer_owed()
        updates = await self.channels.updates(await self.conversations.next_offset(), self.poll_timeout_s)
        for update in updates:
            answer = await self.conversations.handle(incoming(update), now=utcnow())
            if answer is not None:
                await self._deliver(update.update_id, answer)
        return len(updates)

    async def answer_owed(self) -> None:
        for row in await self.conversations.unanswered():
            await self._deliver(row.update_id, row.answer if isinstance(row.answer, dict) else json.loads(row.answer))

    async def _deliver(self, update_id: int, answer: dict) -> None:
        """Sends an update's answer; a refusal (the user blocked the bot, a
        button press too old to answer) ends it too: it can never be sent."""
        try:
            if "query_id" in answer:
                await self.channels.answer_button(answer["query_id"], answer["text"])
            else:
                await self.channels.send_to_user(answer["chat_id"], answer["text"])
        except ChannelRefused as error:
            log.info("an answer could not be delivered", extra={"fields": {"update_id": update_id,
                                                                            "error": error.message}})
        await self.conversations.answered(update_id)

    async def show_orders(self) -> None:
        """Each order the owner has not seen as it is now: sent while it
        awaits an answer, edited once answered, expired or cancelled."""
        for row in await self.conversations.orders_to_show():
            try:
                if row.owner_telegram_user_id is None:
                    pass  # no bound account to tell
                elif row.order_message_id is None and row.status == publication.AWAITING:
                    sent = await self.channels.send_to_user(row.owner_telegram_user_id, order_text(row),
                                                            order_buttons(row.id))
                    await self.conversations.order_shown(row.id, shown=row.status, chat_id=row.owner_telegram_user_id,
                                                         message_id=sent)
                    continue
                elif row.order_message_id is not None:
                    await self.channels.edit_user_message(row.order_chat_id, row.order_message_id, outcome_text(row))
            except ChannelRefused as error:  # blocked the bot, or the message is gone: nothing more to show
                log.info("an order could not be shown", extra={"fields": {"post_job_id": str(row.id),
                                                                           "error": error.message}})
            await self.conversations.order_shown(row.id, shown=row.status)

    async def run(self) -> None:
        """Polls while this process leads; waits for the lock otherwise."""
        while not self.stopping.is_set():
            wait = 0.0
            try:
                self.leading = await self.leadership.ensure()
                if self.leading:
                    await self.run_once()
                else:
                    wait = FOLLOWER_WAIT_S
            except TransientChannelError as error:
                log.warning("the Bot API did not answer; polling again", extra={"fields": {"error": error.message}})
                wait = ERROR_WAIT_S
            except Exception:
                log.exception("bot pass failed; next time")
                wait = ERROR_WAIT_S
            if wait:
                await self._pause(wait)

    async def run_orders(self) -> None:
        """Beside the long poll, every `orders_every_s` while leading: an
        order is shown within a second of its change, not a poll later."""
        while not self.stopping.is_set():
            if self.leading:
                try:
                    await self.show_orders()
                except TransientChannelError as error:
                    log.warning("the Bot API did not answer; showing orders later",
                                extra={"fields": {"error": error.message}})
                except Exception:
                    log.exception("showing orders failed; next time")
            await self._pause(self.orders_every_s)

    async def _pause(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self.stopping.wait(), seconds)
        except asyncio.TimeoutError:
            pass

    def stop(self) -> None:
        self.stopping.set()


async def start(settings: TelegramSettings):
    """Starts the bot; returns its stop: the long poll is cut (nothing is
    lost: an update not yet handled comes again), then everything closes."""
    db = await open_database(settings, settings.campaigns_database, pool_size=3)
    channels = settings.channel_adapter()
    await channels.start()
    bot = Bot(Conversations(db), channels, holders.Leadership(db.dsn, holders.BOT_LEADER),
              poll_timeout_s=settings.bot_poll_timeout_s)
    tasks = [asyncio.create_task(bot.run()), asyncio.create_task(bot.run_orders())]
    log.info("bot started", extra={"fields": {"bot_api": settings.telegram_api_url}})

    async def stop() -> None:
        bot.stop()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await bot.leadership.close()
        await channels.close()
        await db.dispose()

    return stop


def main() -> None:
    run_process("bot", TelegramSettings, start)


if __name__ == "__main__":
    main()
