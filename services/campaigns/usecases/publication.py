"""Publication's use cases: the worker's acts (publish a due job, check a
published post, sweep jobs whose worker died) and the reads and verdicts of
publishers and admins (a channel's posts, all post jobs, resolving a job in
review). One unit of work each; money moves through the outbox, committed
with the move that owes it (a release for a completed target, a refund for
a failed one). docs/design.md, "Publication"."""
import datetime as dt
import logging
from collections.abc import Callable

from common import outbox
from common.auth import SYSTEM, Actor
from common.db import Database, UnitOfWork
from common.errors import Forbidden, NotFound
from common.pagination import page_limit
from common.timestamps import utcnow
from services.campaigns import domain, publication, store
from services.campaigns import publication_store as jobs
from services.campaigns.publication import PublicationPolicy
from services.campaigns.telegram import (ChannelRefused, TelegramChannels, TokenRejected, TransientChannelError,
                                         username_of)
from services.campaigns.usecases.shared import cursor_key, paginate

log = logging.getLogger(__name__)

POST_JOB_NOT_FOUND = "Post job not found"


def _page_key(row) -> tuple:
    return store.page_key(row, "execute_at")


async def _owe(uow: UnitOfWork, topic: str, target_id) -> None:
    """The money move a target's end owes, committed with that end."""
    await outbox.enqueue(uow, topic, str(target_id), {"target_id": str(target_id)})


async def _audit_job(uow: UnitOfWork, actor: Actor, action: str, job_id, frm: str, to: str, **detail) -> None:
    await store.audit(uow, actor, action, "post_job", job_id, from_status=frm, to_status=to,
                      detail={k: str(v) for k, v in detail.items() if v is not None})


class Publication:
    """The publisher worker's acts, each guarded by the claim it holds."""

    def __init__(self, db: Database, channels: TelegramChannels, policy: PublicationPolicy,
                 clock: Callable[[], dt.datetime] = utcnow):
        self.db, self.channels, self.policy, self.clock = db, channels, policy, clock

    # ---- claims
    async def claim_posts(self, holder: int) -> list:
        async with self.db.single_statement("claim_due_posts") as uow:
            return await jobs.claim_posts(uow, holder, self.policy)

    async def claim_checks(self, holder: int) -> list:
        async with self.db.single_statement("claim_due_checks") as uow:
            return await jobs.claim_checks(uow, holder, self.policy)

    async def sweep_abandoned(self) -> int:
        """publishing → needs_review for each job whose worker is gone."""
        async with self.db.unit_of_work("review_abandoned_posts") as uow:
            swept = await jobs.sweep_abandoned(uow)
            for row in swept:
                await _audit_job(uow, SYSTEM, "post_job_needs_review", row.id, publication.PUBLISHING,
                                 publication.NEEDS_REVIEW, target_id=row.target_id)
            await uow.commit()
        for row in swept:
            log.warning("post job needs review: its worker stopped mid-publication",
                        extra={"fields": {"post_job_id": str(row.id), "target_id": str(row.target_id)}})
        return len(swept)

    # ---- publishing
    async def publish(self, job, holder: int) -> str:
        """Publishes one claimed job; returns the status it left the job in."""
        now = self.clock()
        if job.campaign_status == "cancelled":
            # Its campaign was cancelled while the job was out of the queue
            # (a cascade leaves such targets to their post): back in the
            # queue, it is never sent, and the advertiser is refunded.
            return await self._fail(job, holder, publication.PUBLISHING, publication.CAMPAIGN_CANCELLED)
        if self.policy.overdue(job.execute_at, now):
            return await self._fail(job, holder, publication.PUBLISHING, self.policy.no_show())
        if job.text is None:
            return await self._fail(job, holder, publication.PUBLISHING, "the campaign has no creative to publish")
        chat_id = job.listing_chat_id  # the chat its owner was proven to own, never an older one
        try:
            lost = await self._ownership_lost(job, chat_id)
            if lost is not None:
                return await self._fail(job, holder, publication.PUBLISHING, lost, suspend=True)
            async with self.db.single_statement("record_ownership_checked") as uow:
                if not await jobs.ownership_checked(uow, job.id, holder=holder, chat_id=chat_id,
                                                    owner_telegram_user_id=job.owner_telegram_user_id):
                    return publication.NEEDS_REVIEW  # swept as abandoned meanwhile: nothing was sent
            posted = await self.channels.publish(chat_id, job.handle, job.text, job.media_url)
        except (TransientChannelError, TokenRejected) as error:
            # A refused token is the operator's to fix, never the channel's
            # fault: the job waits (until its deadline) like after an outage.
            if isinstance(error, TransientChannelError) and error.maybe_delivered:
                return await self._leave_for_review(job, holder, error.message)
            if isinstance(error, TokenRejected):
                log.error("the Bot API refused the bot token; fix TELEGRAM_BOT_TOKEN", extra={"fields": {
                    "post_job_id": str(job.id)}})
            due = self.policy.retry_at(now, job.attempts, getattr(error, "retry_after", None))
            if due > self.policy.deadline(job.execute_at):
                return await self._fail(job, holder, publication.PUBLISHING,
                                        f"{self.policy.no_show()}; last error: {error.message}")
            async with self.db.single_statement("retry_post_later") as uow:
                await jobs.retry_later(uow, job.id, holder=holder, due=due, error=error.message)
            return publication.QUEUED
        except ChannelRefused as error:
            return await self._fail(job, holder, publication.PUBLISHING, error.message)
        return await self._record_published(job, holder, chat_id, posted.message_id, posted.url)

    async def _ownership_lost(self, job, chat_id: int | None) -> str | None:
        """Why the post must not go out, asked of Telegram right before it:
        the listing is no longer approved, the owner's bound account is no
        longer the chat's creator or an administrator (or is unbound), or the
        bot cannot post there; None when it may go out."""
        if job.channel_status != "approved":
            return publication.LISTING_NOT_APPROVED.format(status=job.channel_status)
        if job.owner_telegram_user_id is None or chat_id is None:
            return publication.OWNERSHIP_LOST
        try:
            # The bot first: one that was removed cannot see the members.
            await self.channels.check_bot_posts(chat_id, username_of(job.handle))
            owner = await self.channels.member_status(chat_id, job.owner_telegram_user_id)
        except TokenRejected:
            raise
        except ChannelRefused as error:  # kicked, no rights, the chat gone
            return publication.BOT_CANNOT_POST.format(message=error.message)
        return None if owner in domain.CHAT_OWNERS else publication.OWNERSHIP_LOST

    async def _record_published(self, job, holder: int | None, chat_id: int | None, message_id: int, url: str,
                                *, expected: str = publication.PUBLISHING, actor: Actor = SYSTEM) -> str:
        async def attempt():
            now = self.clock()
            async with self.db.unit_of_work("record_post_published") as uow:
                done = await jobs.record_published(uow, job.id, holder=holder, expected=expected, chat_id=chat_id,
                                                   message_id=message_id, url=url, now=now,
                                                   checks=self.policy.check_plan(now))
                if done is None:
                    # Swept into review while the call ran: keep the message for the admin.
                    if chat_id is not None:
                        await jobs.note_late_message(uow, job.id, chat_id=chat_id, message_id=message_id, url=url)
                else:
                    await _audit_job(uow, actor, "post_job_published", job.id, expected, publication.PUBLISHED,
                                     message_url=url)
                    if done.published_target is not None:
                        await store.audit(uow, actor, "target_published", "target", done.target_id,
                                          from_status="approved", to_status="published")
                await uow.commit()
            return publication.PUBLISHED if done is not None else publication.NEEDS_REVIEW

        # Guarded, so running it again after a lost race changes nothing twice.
        return await self.db.retrying(attempt)

    async def _leave_for_review(self, job, holder: int, error: str) -> str:
        """A call whose outcome is unknown (it may have reached Telegram) is
        never repeated: the job waits for an admin, as if its worker died."""
        async with self.db.unit_of_work("post_outcome_unknown") as uow:
            moved = await jobs.leave_for_review(uow, job.id, holder=holder,
                                                error=f"outcome of the Bot API call unknown: {error}")
            if moved:
                await _audit_job(uow, SYSTEM, "post_job_needs_review", job.id, publication.PUBLISHING,
                                 publication.NEEDS_REVIEW, error=error)
            await uow.commit()
        return publication.NEEDS_REVIEW

    async def _fail(self, job, holder: int | None, expected: str, reason: str, *, actor: Actor = SYSTEM,
                    suspend: bool = False) -> str:
        """The job and its target failed; the advertiser's refund is queued
        with it, and with `suspend` the listing is suspended too."""
        async def attempt():
            async with self.db.unit_of_work("fail_post") as uow:
                failed = await jobs.fail(uow, job.id, expected=[expected], holder=holder, reason=reason)
                if failed is not None and suspend and await store.suspend_channel(uow, job.channel_id, reason=reason):
                    await store.audit(uow, actor, "channel_suspended", "channel", job.channel_id,
                                      from_status="approved", to_status="suspended", detail={"reason": reason})
                if failed is not None:
                    await _audit_job(uow, actor, "post_job_failed", job.id, expected, publication.FAILED,
                                     reason=reason)
                    if failed.failed_target is not None:
                        await store.audit(uow, actor, "target_failed", "target", failed.target_id,
                                          to_status="failed", detail={"reason": reason})
                    await _owe(uow, domain.REFUND_TOPIC, failed.target_id)
                await uow.commit()
            return publication.FAILED if failed is not None else expected

        return await self.db.retrying(attempt)

    # ---- proof
    async def check(self, job, holder: int) -> str:
        """One proof check of a published post; returns the job's status after it."""
        now = self.clock()
        try:
            chat_id = job.chat_id if job.chat_id is not None else await self.channels.chat_for_posting(job.handle)
            up = await self.channels.is_up(chat_id, job.message_id)
        except (TransientChannelError, TokenRejected) as error:
            async with self.db.single_statement("check_post_later") as uow:
                await jobs.check_later(uow, job.id, holder=holder, error=error.message,
                                       due=self.policy.retry_at(now, job.check_failures + 1,
                                                                getattr(error, "retry_after", None)))
            return publication.PUBLISHED
        except ChannelRefused as error:
            return await self._fail(job, holder, publication.PUBLISHED, f"the post could not be checked: {error.message}")
        if not up:
            return await self._fail(job, holder, publication.PUBLISHED, publication.REMOVED_EARLY)
        async def attempt():
            async with self.db.unit_of_work("record_post_check") as uow:
                passed = await jobs.check_passed(uow, job.id, holder=holder, done=job.checks_done)
                if passed is not None and passed.completed_target is not None:
                    await _audit_job(uow, SYSTEM, "post_job_verified", job.id, publication.PUBLISHED,
                                     publication.VERIFIED)
                    await store.audit(uow, SYSTEM, "target_completed", "target", passed.target_id,
                                      from_status="published", to_status="completed")
                    await _owe(uow, publication.RELEASE_TOPIC, passed.target_id)
                await uow.commit()
            return passed.status if passed is not None else publication.PUBLISHED

        return await self.db.retrying(attempt)

    # ---- an admin's verdict on a job in review
    async def resolve(self, actor: Actor, job_id: str, resolution: publication.Resolution):
        """needs_review → published (with the message link), queued (retry)
        or failed (refund); any other status is a conflict."""
        actor.require("admin")
        async with self.db.unit_of_work("read_post_job") as uow:
            job = await jobs.job_by_id(uow, job_id)
        if job is None:
            raise NotFound(POST_JOB_NOT_FOUND)
        publication.check_in_review(job.status)
        if resolution.outcome == "retry":
            publication.check_retryable(job.message_url)
        if resolution.outcome == "published":
            status = await self._record_published(job, None, None, resolution.message_id, resolution.message_url,
                                                  expected=publication.NEEDS_REVIEW, actor=actor)
        elif resolution.outcome == "failed":
            status = await self._fail(job, None, publication.NEEDS_REVIEW, resolution.reason, actor=actor)
        else:
            async with self.db.unit_of_work("retry_post_job") as uow:
                requeued = await jobs.requeue(uow, job_id)
                if requeued:
                    await _audit_job(uow, actor, "post_job_retried", job_id, publication.NEEDS_REVIEW,
                                     publication.QUEUED)
                await uow.commit()
            status = publication.QUEUED if requeued else None
        async with self.db.unit_of_work("read_post_job") as uow:
            after = await jobs.job_by_id(uow, job_id)
        if status is None or after.status != status:
            publication.check_in_review(after.status)  # a concurrent resolution won
            publication.check_retryable(after.message_url)  # or the late answer arrived meanwhile
        return after

    # ---- reads
    async def channel_posts(self, actor: Actor, channel_id: str, *, status: str, limit: int, cursor: str):
        """A channel's post jobs, soonest first, for its owner or an admin."""
        status_filter, limit, after = publication.valid_job_status_filter(status), page_limit(limit), cursor_key(cursor)
        async with self.db.unit_of_work("list_channel_posts") as uow:
            channel = await store.get_channel(uow, channel_id)
            if channel is None:
                raise NotFound("Channel not found")
            if actor.role not in ("admin", "system") and str(channel.owner_id) != actor.id:
                raise Forbidden("Not the channel's owner")
            rows = await jobs.list_jobs(uow, channel_id=channel_id, status=status_filter, after=after,
                                        limit=limit + 1)
        return paginate(rows, limit, key=_page_key)

    async def post_jobs(self, actor: Actor, *, status: str, limit: int, cursor: str):
        """Every channel's post jobs, soonest first, for admins."""
        actor.require("admin", "system")
        status_filter, limit, after = publication.valid_job_status_filter(status), page_limit(limit), cursor_key(cursor)
        async with self.db.unit_of_work("list_post_jobs") as uow:
            rows = await jobs.list_jobs(uow, channel_id=None, status=status_filter, after=after, limit=limit + 1)
        return paginate(rows, limit, key=_page_key)
