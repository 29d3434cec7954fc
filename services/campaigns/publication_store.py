"""Post jobs as the publisher worker and admins move them: each statement
guards the move it makes (the status it expects, and for a worker's move
the claim it holds), so two workers, or a worker and an admin, can never
both move one job. Lock order as in store.py: target, then post job; the
worker's claims lock only post jobs (SKIP LOCKED), never waiting."""
import datetime as dt

import sqlalchemy as sa

from common import holders
from common.db import UnitOfWork
from services.campaigns import domain, publication

_HOLDER_GONE = holders.gone("o.claimed_by")

# The first CTE of every statement that moves a job together with its
# target: the target row is locked before the job's, the order a cancel
# takes them in (store.py), so the two never wait on each other in a circle.
_TARGET_FIRST = """target_locked AS (
        SELECT t.id FROM targets t WHERE t.id = (SELECT target_id FROM post_jobs WHERE id = :id) FOR UPDATE)"""

# What a worker needs to publish a job: its channel and the campaign's
# first creative (a campaign's creatives are alternatives; the first is
# the one booked).
_JOB_CONTEXT = """
    SELECT c.id, c.target_id, c.execute_at, c.attempts, c.chat_id AS job_chat_id, c.message_id, c.checks_done,
           c.check_failures,
           cardinality(c.checks_at) AS checks_planned, t.campaign_id, cp.status AS campaign_status,
           ch.id AS channel_id, ch.handle, COALESCE(c.chat_id, ch.chat_id) AS chat_id, cr.text, cr.media_url,
           ch.status AS channel_status, ch.chat_id AS listing_chat_id, ta.telegram_user_id AS owner_telegram_user_id
      FROM claimed c
      JOIN targets t ON t.id = c.target_id
      JOIN campaigns cp ON cp.id = t.campaign_id
      JOIN channels ch ON ch.id = t.channel_id
      LEFT JOIN telegram_accounts ta ON ta.user_id = ch.owner_id
      LEFT JOIN LATERAL (SELECT text, media_url FROM creatives WHERE campaign_id = t.campaign_id
                          ORDER BY seq LIMIT 1) cr ON true"""

# queued → publishing, committed BEFORE the Bot API call (the at-most-once
# rule): due jobs of approved targets, disjoint across workers.
_CLAIM_POSTS = sa.text(f"""
    WITH due AS (
        SELECT o.id FROM post_jobs o JOIN targets t ON t.id = o.target_id
         WHERE o.status = 'queued' AND o.due_at <= now() AND t.status = 'approved'
         ORDER BY o.due_at, o.id LIMIT :batch
           FOR UPDATE OF o SKIP LOCKED),
    claimed AS (
        UPDATE post_jobs p SET status = 'publishing', claimed_by = :holder, attempts = p.attempts + 1,
                               claimed_until = now() + make_interval(secs => :lease), updated_at = now()
          FROM due WHERE p.id = due.id
        RETURNING p.*)
    {_JOB_CONTEXT}""")

# Published jobs whose next proof check is due and that no live worker
# checks now (a check is safe to repeat, so an expired claim is taken over).
_CLAIM_CHECKS = sa.text(f"""
    WITH due AS (
        SELECT o.id FROM post_jobs o
         WHERE o.status = 'published' AND o.due_at <= now()
           AND (o.claimed_until IS NULL OR o.claimed_until < now() OR {_HOLDER_GONE})
         ORDER BY o.due_at, o.id LIMIT :batch
           FOR UPDATE SKIP LOCKED),
    claimed AS (
        UPDATE post_jobs p SET claimed_by = :holder, claimed_until = now() + make_interval(secs => :lease)
          FROM due WHERE p.id = due.id
        RETURNING p.*)
    {_JOB_CONTEXT}""")

# publishing → published: the message recorded in the commit after the
# call; the target is published with it and the proof checks planned.
_RECORD_PUBLISHED = sa.text(f"""
    WITH {_TARGET_FIRST},
    job AS (
        UPDATE post_jobs SET status = 'published', chat_id = COALESCE(CAST(:chat_id AS bigint), chat_id),
                             message_id = :message_id,
                             message_url = :url, published_at = :now, checks_at = CAST(:checks AS timestamptz[]),
                             checks_done = 0, due_at = (CAST(:checks AS timestamptz[]))[1], claimed_by = NULL,
                             claimed_until = NULL, last_error = NULL, updated_at = now()
         WHERE id = :id AND status = :expected AND claimed_by IS NOT DISTINCT FROM CAST(:holder AS integer)
           AND EXISTS (SELECT FROM target_locked)
        RETURNING id, target_id),
    target AS (
        UPDATE targets SET status = 'published', updated_at = now()
         WHERE id = (SELECT target_id FROM job) AND status = 'approved'
        RETURNING id)
    SELECT job.target_id, (SELECT id FROM target) AS published_target FROM job""")

# A post that went out after its worker was taken for dead: the job is in
# review already; the message is kept on it for the admin to see.
_NOTE_LATE_MESSAGE = sa.text("""
    UPDATE post_jobs SET chat_id = :chat_id, message_id = :message_id, message_url = :url,
                         last_error = 'the post went out after its worker was presumed dead: ' || :url
     WHERE id = :id AND status = 'needs_review' AND message_id IS NULL""")

# Ownership was proven right before the post: whose account, and the chat
# the post goes to (adtech verify holds every published job to them).
_OWNERSHIP_CHECKED = sa.text("""
    UPDATE post_jobs SET owner_telegram_user_id = :owner, chat_id = :chat_id
     WHERE id = :id AND status = 'publishing' AND claimed_by = :holder""")

# publishing → queued after a transient failure, due again later.
_RETRY_LATER = sa.text("""
    UPDATE post_jobs SET status = 'queued', due_at = :due, last_error = :error, claimed_by = NULL,
                         claimed_until = NULL, updated_at = now()
     WHERE id = :id AND status = 'publishing' AND claimed_by = :holder""")

# → failed, with the target (approved or published) failed too; the caller
# queues the refund in the same transaction.
_FAIL = sa.text(f"""
    WITH {_TARGET_FIRST},
    job AS (
        UPDATE post_jobs SET status = 'failed', failure_reason = :reason, claimed_by = NULL, claimed_until = NULL,
                             updated_at = now()
         WHERE id = :id AND status = ANY(:expected) AND claimed_by IS NOT DISTINCT FROM CAST(:holder AS integer)
           AND EXISTS (SELECT FROM target_locked)
        RETURNING id, target_id),
    target AS (
        UPDATE targets SET status = 'failed', updated_at = now()
         WHERE id = (SELECT target_id FROM job) AND status IN ('approved', 'published')
        RETURNING id, status)
    SELECT job.target_id, (SELECT id FROM target) AS failed_target FROM job""")

# A proof check passed: the next one is due at its planned time; after
# the last, the job is verified and the target completed (the caller
# queues the release in the same transaction).
_CHECK_PASSED = sa.text(f"""
    WITH {_TARGET_FIRST},
    job AS (
        UPDATE post_jobs
           SET checks_done = checks_done + 1,
               status = CASE WHEN checks_done + 1 >= cardinality(checks_at) THEN 'verified' ELSE 'published' END,
               verified_at = CASE WHEN checks_done + 1 >= cardinality(checks_at) THEN now() END,
               due_at = COALESCE(checks_at[checks_done + 2], due_at),
               check_failures = 0, claimed_by = NULL, claimed_until = NULL, last_error = NULL, updated_at = now()
         WHERE id = :id AND status = 'published' AND claimed_by = :holder AND checks_done = :done
           AND EXISTS (SELECT FROM target_locked)
        RETURNING target_id, status),
    target AS (
        UPDATE targets SET status = 'completed', updated_at = now()
         WHERE id = (SELECT target_id FROM job WHERE status = 'verified') AND status = 'published'
        RETURNING id)
    SELECT job.target_id, job.status, (SELECT id FROM target) AS completed_target FROM job""")

_CHECK_LATER = sa.text("""
    UPDATE post_jobs SET due_at = :due, last_error = :error, check_failures = check_failures + 1, claimed_by = NULL,
                         claimed_until = NULL
     WHERE id = :id AND status = 'published' AND claimed_by = :holder""")

# publishing whose worker is gone (its session ended, or its lease ran
# out): the post may or may not be out, so it is never re-sent blindly.
_SWEEP_ABANDONED = sa.text(f"""
    UPDATE post_jobs o SET status = 'needs_review', claimed_by = NULL, claimed_until = NULL, updated_at = now(),
                           last_error = 'its worker stopped during the Bot API call: the post may or may not be out'
     WHERE o.status = 'publishing' AND (o.claimed_until < now() OR {_HOLDER_GONE})
    RETURNING o.id, o.target_id""")

# A call whose outcome is unknown: the job waits for an admin.
_LEAVE_FOR_REVIEW = sa.text("""
    UPDATE post_jobs SET status = 'needs_review', claimed_by = NULL, claimed_until = NULL, last_error = :error,
                         updated_at = now()
     WHERE id = :id AND status = 'publishing' AND claimed_by = :holder""")

# failureReason: why it failed, or why it waits for an admin.
_FAILURE_REASON = "COALESCE(p.failure_reason, CASE WHEN p.status = 'needs_review' THEN p.last_error END)"
_JOB_COLUMNS = f"""p.id, p.target_id, p.execute_at, p.status, p.message_url, p.published_at, p.verified_at,
                  {_FAILURE_REASON} AS failure_reason, p.message_id, p.accept_by, p.answered_at, p.decline_reason"""

_LIST = sa.text(f"""
    SELECT {_JOB_COLUMNS}, t.campaign_id, t.price, t.currency, t.channel_id
      FROM post_jobs p JOIN targets t ON t.id = p.target_id
     WHERE (CAST(:channel AS uuid) IS NULL OR t.channel_id = CAST(:channel AS uuid))
       AND (CAST(:status AS text) IS NULL OR p.status = :status)
       AND (CAST(:at AS timestamptz) IS NULL OR (p.execute_at, p.id) > (:at, CAST(:after_id AS uuid)))
     ORDER BY p.execute_at, p.id LIMIT :limit""")

_JOB_BY_ID = sa.text(f"""
    SELECT {_JOB_COLUMNS}, t.campaign_id, t.price, t.currency, t.channel_id
      FROM post_jobs p JOIN targets t ON t.id = p.target_id WHERE p.id = :id""")

_LOCK_JOB_OF_TARGET = sa.text("SELECT id, status FROM post_jobs WHERE target_id = :target_id FOR UPDATE")

# Only a job whose post is not known to be out goes back to the queue.
_REQUEUE = sa.text("""
    UPDATE post_jobs SET status = 'queued', due_at = now(), last_error = NULL, updated_at = now()
     WHERE id = :id AND status = 'needs_review' AND message_id IS NULL""")


async def claim_posts(uow: UnitOfWork, holder: int, policy: publication.PublicationPolicy) -> list:
    return (await uow.execute(_CLAIM_POSTS, {"holder": holder, "lease": policy.lease_s,
                                             "batch": policy.batch})).all()


async def claim_checks(uow: UnitOfWork, holder: int, policy: publication.PublicationPolicy) -> list:
    return (await uow.execute(_CLAIM_CHECKS, {"holder": holder, "lease": policy.lease_s, "batch": policy.batch,
                                              "holder_locks": holders.PUBLISHER_HOLDERS})).all()


async def record_published(uow: UnitOfWork, job_id, *, holder: int | None, expected: str, chat_id: int | None,
                           message_id: int, url: str, now: dt.datetime, checks: list[dt.datetime]):
    """The job published (and its target); None when the guard failed."""
    return (await uow.execute(_RECORD_PUBLISHED, {
        "id": str(job_id), "holder": holder, "expected": expected, "chat_id": chat_id, "message_id": message_id,
        "url": url, "now": now, "checks": checks})).one_or_none()


async def ownership_checked(uow: UnitOfWork, job_id, *, holder: int, owner_telegram_user_id: int,
                            chat_id: int) -> bool:
    result = await uow.execute(_OWNERSHIP_CHECKED, {"id": str(job_id), "holder": holder,
                                                    "owner": owner_telegram_user_id, "chat_id": chat_id})
    return result.rowcount == 1


async def note_late_message(uow: UnitOfWork, job_id, *, chat_id: int, message_id: int, url: str) -> None:
    await uow.execute(_NOTE_LATE_MESSAGE, {"id": str(job_id), "chat_id": chat_id, "message_id": message_id,
                                           "url": url})


async def retry_later(uow: UnitOfWork, job_id, *, holder: int, due: dt.datetime, error: str) -> bool:
    result = await uow.execute(_RETRY_LATER, {"id": str(job_id), "holder": holder, "due": due, "error": error[:2000]})
    return result.rowcount == 1


async def fail(uow: UnitOfWork, job_id, *, expected: list[str], holder: int | None, reason: str):
    """The job (and its target) failed; None when the guard failed."""
    return (await uow.execute(_FAIL, {"id": str(job_id), "expected": expected, "holder": holder,
                                      "reason": reason[:domain.REASON_MAX]})).one_or_none()


async def check_passed(uow: UnitOfWork, job_id, *, holder: int, done: int):
    return (await uow.execute(_CHECK_PASSED, {"id": str(job_id), "holder": holder, "done": done})).one_or_none()


async def check_later(uow: UnitOfWork, job_id, *, holder: int, due: dt.datetime, error: str) -> None:
    await uow.execute(_CHECK_LATER, {"id": str(job_id), "holder": holder, "due": due, "error": error[:2000]})


async def sweep_abandoned(uow: UnitOfWork) -> list:
    return (await uow.execute(_SWEEP_ABANDONED, {"holder_locks": holders.PUBLISHER_HOLDERS})).all()


async def leave_for_review(uow: UnitOfWork, job_id, *, holder: int, error: str) -> bool:
    result = await uow.execute(_LEAVE_FOR_REVIEW, {"id": str(job_id), "holder": holder, "error": error[:2000]})
    return result.rowcount == 1


async def list_jobs(uow: UnitOfWork, *, channel_id: str | None, status: str | None, after: tuple | None,
                    limit: int) -> list:
    at, after_id = after if after else (None, None)
    return (await uow.execute(_LIST, {"channel": channel_id, "status": status, "at": at,
                                      "after_id": str(after_id) if after_id else None, "limit": limit})).all()


async def job_by_id(uow: UnitOfWork, job_id: str):
    return (await uow.execute(_JOB_BY_ID, {"id": job_id})).one_or_none()


async def lock_job_of_target(uow: UnitOfWork, target_id: str):
    return (await uow.execute(_LOCK_JOB_OF_TARGET, {"target_id": target_id})).one_or_none()


async def requeue(uow: UnitOfWork, job_id: str) -> bool:
    return (await uow.execute(_REQUEUE, {"id": job_id})).rowcount == 1
