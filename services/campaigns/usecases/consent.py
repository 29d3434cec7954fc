"""The channel owner's answer to an approved post (docs/design.md, "The
owner's answer"): accept or decline by route or by the bot's buttons, and
expiry when no answer comes by accept_by. Each is one unit of work that
locks the target, then the job, and moves the job only while it awaits; a
decline or an expiry queues the refund with the move that owes it."""
import datetime as dt
import logging

from common import outbox
from common.auth import SYSTEM, Actor
from common.db import Database, UnitOfWork
from common.errors import NotFound
from services.campaigns import consent_store as orders
from services.campaigns import domain, publication, store
from services.campaigns import publication_store as jobs

log = logging.getLogger(__name__)

POST_JOB_NOT_FOUND = "Post job not found"


async def _refund(uow: UnitOfWork, target_id) -> None:
    await outbox.enqueue(uow, domain.REFUND_TOPIC, str(target_id), {"target_id": str(target_id)})


async def answer_order(uow: UnitOfWork, actor: Actor, job_id: str, *, accept: bool, reason: str,
                       now: dt.datetime) -> str:
    """The owner's answer inside the caller's unit of work (a route's, or
    the bot's for a button press): the status the job moved to, or the
    refusal (NotFound, Forbidden, Conflict) with nothing written."""
    target_id = await orders.target_of_job(uow, job_id)
    order = None if target_id is None else await orders.lock_job_for_answer(uow, target_id)
    if order is None:
        raise NotFound(POST_JOB_NOT_FOUND)
    domain.check_channel_owner(actor.id, str(order.owner_id))
    publication.check_answerable(order.status, order.accept_by, now)
    # The target and the job are locked and judged: the guarded move cannot miss.
    if accept:
        await orders.accept(uow, job_id, now=now)
        moved = publication.QUEUED
    else:
        await orders.decline(uow, job_id, reason=reason, now=now)
        await store.audit(uow, actor, "target_declined", "target", target_id, from_status="approved",
                          to_status="declined", detail={"post_job_id": job_id})
        await _refund(uow, target_id)
        moved = publication.DECLINED
    await store.audit(uow, actor, f"post_job_{'accepted' if accept else 'declined'}", "post_job", job_id,
                      from_status=publication.AWAITING, to_status=moved,
                      detail={"target_id": target_id, **({} if accept else {"reason": reason})})
    return moved


class Consent:
    """The owner's answers and their deadline."""

    def __init__(self, db: Database, *, batch: int = 50):
        self.db, self.batch = db, batch

    async def accept(self, actor: Actor, job_id: str, *, now: dt.datetime):
        """awaiting_publisher → queued: the post goes out at its time."""
        actor.require("publisher")
        async with self.db.unit_of_work("accept_post") as uow:
            await answer_order(uow, actor, job_id, accept=True, reason="", now=now)
            job = await jobs.job_by_id(uow, job_id)
            await uow.commit()
        return job

    async def decline(self, actor: Actor, job_id: str, *, reason: str, now: dt.datetime):
        """awaiting_publisher → declined: the target is declined and the
        advertiser refunded."""
        actor.require("publisher")
        reason = domain.valid_text(reason, "reason", domain.REASON_MAX)
        async with self.db.unit_of_work("decline_post") as uow:
            await answer_order(uow, actor, job_id, accept=False, reason=reason, now=now)
            job = await jobs.job_by_id(uow, job_id)
            await uow.commit()
        return job

    async def expire_due(self, *, now: dt.datetime) -> int:
        """Every job past accept_by without an answer expires: its target is
        declined and the advertiser refunded."""
        async with self.db.unit_of_work("expire_unanswered_posts") as uow:
            expired = await orders.expire_due(uow, now=now, batch=self.batch)
            for row in expired:
                await store.audit(uow, SYSTEM, "post_job_expired", "post_job", row.id, from_status=publication.AWAITING,
                                  to_status=publication.EXPIRED, detail={"target_id": str(row.target_id)})
                await store.audit(uow, SYSTEM, "target_declined", "target", row.target_id, from_status="approved",
                                  to_status="declined", detail={"post_job_id": str(row.id), "why": "no answer"})
                await _refund(uow, row.target_id)
            await uow.commit()
        if expired:
            log.info("orders expired without an answer", extra={"fields": {"count": len(expired)}})
        return len(expired)
