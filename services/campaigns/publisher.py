"""The publisher worker: its own process (`python -m
services.campaigns.publisher`), scaled out by running more. Each loop it
sweeps jobs whose worker died into review, claims due jobs (SKIP LOCKED,
disjoint across workers) and publishes them, and claims due proof checks.

A worker holds its holder lock (common/holders.py) for its life: a job it
marked publishing names it, so the moment its process dies, any other
worker's next sweep sees the job abandoned mid-call and moves it to
needs_review, never back to the queue (the post may be out).

A stop (SIGTERM) claims nothing more and lets the calls under way finish
for up to TELEGRAM_TIMEOUT_S + 2 s (inside `adtech run`'s grace period); a
call that outlasts that is cut, and its job goes to review: never re-sent."""
import asyncio
import logging

from common import holders
from common.bootstrap import open_database, run_process
from common.db import Database
from common.settings import ConfigError
from services.campaigns.publication import PublicationPolicy
from services.campaigns.settings import PublisherSettings
from services.campaigns.telegram import TelegramChannels, TokenRejected
from services.campaigns.usecases.consent import Consent
from services.campaigns.usecases.publication import Publication

log = logging.getLogger(__name__)


class PublisherWorker:
    def __init__(self, publication: Publication, holder: holders.HolderSession, policy: PublicationPolicy,
                 consent: Consent):
        self.publication, self.holder, self.policy, self.consent = publication, holder, policy, consent
        self.stopping = asyncio.Event()

    async def run_once(self) -> int:
        """One pass: sweep, expire orders nobody answered in time, publish
        what is due, check what is due. Returns how many jobs it acted on."""
        holder = await self.holder.ensure()
        if holder is None:
            return 0
        await self.publication.sweep_abandoned()
        await self.consent.expire_due(now=self.publication.clock())
        posts = await self.publication.claim_posts(holder)
        checks = await self.publication.claim_checks(holder)
        results = await asyncio.gather(*(self.publication.publish(job, holder) for job in posts),
                                       *(self.publication.check(job, holder) for job in checks),
                                       return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                log.error("a post job step failed; its claim expires and it is taken up again",
                          exc_info=result)
        return len(posts) + len(checks)

    async def run(self) -> None:
        while not self.stopping.is_set():
            try:
                busy = await self.run_once()
            except Exception:
                log.exception("publisher pass failed; next time")
                busy = 0
            if busy < self.policy.batch:
                try:
                    await asyncio.wait_for(self.stopping.wait(), self.policy.poll_s)
                except asyncio.TimeoutError:
                    pass

    def stop(self) -> None:
        self.stopping.set()


async def assemble(settings: PublisherSettings) -> tuple[PublisherWorker, Database, TelegramChannels]:
    db = await open_database(settings, settings.campaigns_database, pool_size=4)
    channels = settings.channel_adapter()
    try:
        await channels.start()
    except TokenRejected:
        raise ConfigError(f"TELEGRAM_BOT_TOKEN: the Bot API at {settings.telegram_api_url} refused the token") from None
    policy = settings.publication_policy()
    worker = PublisherWorker(Publication(db, channels, policy), holders.HolderSession(db.dsn, holders.PUBLISHER_HOLDERS),
                             policy, Consent(db))
    return worker, db, channels


async def start(settings: PublisherSettings):
    """Starts the worker; returns its stop: claim nothing more, let the
    calls under way finish (bounded), then close."""
    worker, db, channels = await assemble(settings)
    task = asyncio.create_task(worker.run())
    log.info("publishing", extra={"fields": {"bot_api": settings.telegram_api_url}})

    async def stop() -> None:
        worker.stop()
        try:
            await asyncio.wait_for(task, settings.telegram_timeout_s + 2)
        except asyncio.TimeoutError:
            log.error("a pass did not finish in time; its jobs go to review")
        await worker.holder.close()
        await channels.close()
        await db.dispose()

    return stop


def main() -> None:
    run_process("publisher", PublisherSettings, start)

if __name__ == "__main__":
    main()
