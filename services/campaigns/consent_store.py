"""The channel owner's answer to an approved post: accept, decline, expiry,
and the order message the bot keeps in step with it (docs/design.md, "The
owner's answer"). Lock order as in store.py: the target, then its post job;
every move is guarded by `status = 'awaiting_publisher'`, so accept,
decline, expiry and a cancel race to exactly one outcome."""
import sqlalchemy as sa

from common.db import UnitOfWork

# The target of a job (immutable): read without a lock.
_TARGET_OF_JOB = sa.text("SELECT target_id FROM post_jobs WHERE id = :id")

# The job with what judging an answer needs, its target locked first.
_LOCK_JOB_FOR_ANSWER = sa.text("""
    WITH target_locked AS MATERIALIZED (
        SELECT t.id, t.channel_id FROM targets t WHERE t.id = :target_id FOR UPDATE)
    SELECT p.id, p.status, p.accept_by, ch.owner_id
      FROM target_locked t
      JOIN post_jobs p ON p.target_id = t.id
      JOIN channels ch ON ch.id = t.channel_id
       FOR UPDATE OF p""")

_ACCEPT = sa.text("""
    UPDATE post_jobs SET status = 'queued', answered_at = :now, updated_at = now()
     WHERE id = :id AND status = 'awaiting_publisher' AND accept_by > :now""")

# → declined by the owner, the target declined with it.
_DECLINE = sa.text("""
    WITH job AS (
        UPDATE post_jobs SET status = 'declined', answered_at = :now, decline_reason = :reason, updated_at = now()
         WHERE id = :id AND status = 'awaiting_publisher' AND accept_by > :now
        RETURNING id, target_id),
    target AS (
        UPDATE targets SET status = 'declined', updated_at = now()
         WHERE id = (SELECT target_id FROM job) AND status = 'approved'
        RETURNING id)
    SELECT id FROM job""")

# Jobs past their answer deadline: each target locked first (SKIP LOCKED:
# one being answered or cancelled now is judged again next pass), the job
# moved only if it still awaits.
_EXPIRE_DUE = sa.text("""
    WITH due AS (
        SELECT t.id AS target_id, p.id FROM post_jobs p JOIN targets t ON t.id = p.target_id
         WHERE p.status = 'awaiting_publisher' AND p.accept_by <= :now
         ORDER BY p.accept_by, p.id LIMIT :batch
           FOR UPDATE OF t SKIP LOCKED),
    job AS (
        UPDATE post_jobs p SET status = 'expired', updated_at = now()
          FROM due WHERE p.id = due.id AND p.status = 'awaiting_publisher'
        RETURNING p.id, p.target_id),
    target AS (
        UPDATE targets t SET status = 'declined', updated_at = now()
          FROM job WHERE t.id = job.target_id AND t.status = 'approved'
        RETURNING t.id)
    SELECT job.id, job.target_id FROM job""")

# Orders whose message does not show the job's status yet: never sent, or
# answered, expired or cancelled since. With what the message says.
_ORDERS_TO_SHOW = sa.text("""
    SELECT p.id, p.status, p.accept_by, p.execute_at, p.order_chat_id, p.order_message_id, t.price, t.currency,
           ch.handle, ta.telegram_user_id AS owner_telegram_user_id, cr.text
      FROM post_jobs p
      JOIN targets t ON t.id = p.target_id
      JOIN channels ch ON ch.id = t.channel_id
      LEFT JOIN telegram_accounts ta ON ta.user_id = ch.owner_id
      LEFT JOIN LATERAL (SELECT text FROM creatives WHERE campaign_id = t.campaign_id ORDER BY seq LIMIT 1) cr ON true
     WHERE p.accept_by IS NOT NULL AND p.order_shown IS DISTINCT FROM p.status
     ORDER BY p.updated_at, p.id LIMIT :batch""")

_ORDER_SHOWN = sa.text("""
    UPDATE post_jobs SET order_shown = :shown,
                         order_chat_id = COALESCE(CAST(:chat_id AS bigint), order_chat_id),
                         order_message_id = COALESCE(CAST(:message_id AS bigint), order_message_id)
     WHERE id = :id""")

# A press of an order's button counts only from the channel owner's bound account.
_OWNER_PRESSING = sa.text("""
    SELECT ch.owner_id FROM post_jobs p
      JOIN targets t ON t.id = p.target_id
      JOIN channels ch ON ch.id = t.channel_id
      JOIN telegram_accounts ta ON ta.user_id = ch.owner_id
     WHERE p.id = :id AND ta.telegram_user_id = :telegram_user""")


async def target_of_job(uow: UnitOfWork, job_id: str) -> str | None:
    value = (await uow.execute(_TARGET_OF_JOB, {"id": job_id})).scalar()
    return None if value is None else str(value)


async def lock_job_for_answer(uow: UnitOfWork, target_id: str):
    """The target's post job with its channel's owner, the target then the job locked."""
    return (await uow.execute(_LOCK_JOB_FOR_ANSWER, {"target_id": target_id})).one_or_none()


async def accept(uow: UnitOfWork, job_id: str, *, now) -> bool:
    return (await uow.execute(_ACCEPT, {"id": job_id, "now": now})).rowcount == 1


async def decline(uow: UnitOfWork, job_id: str, *, reason: str, now) -> bool:
    declined = await uow.execute(_DECLINE, {"id": job_id, "now": now, "reason": reason})
    return declined.scalar() is not None


async def expire_due(uow: UnitOfWork, *, now, batch: int) -> list:
    return (await uow.execute(_EXPIRE_DUE, {"now": now, "batch": batch})).all()


async def orders_to_show(uow: UnitOfWork, *, batch: int) -> list:
    return (await uow.execute(_ORDERS_TO_SHOW, {"batch": batch})).all()


async def order_shown(uow: UnitOfWork, job_id, *, shown: str, chat_id: int | None = None,
                      message_id: int | None = None) -> None:
    await uow.execute(_ORDER_SHOWN, {"id": str(job_id), "shown": shown, "chat_id": chat_id,
                                     "message_id": message_id})


async def owner_pressing(uow: UnitOfWork, job_id: str, telegram_user_id: int):
    """The channel owner's user id when `telegram_user_id` is their bound account."""
    value = (await uow.execute(_OWNER_PRESSING, {"id": job_id, "telegram_user": telegram_user_id})).scalar()
    return None if value is None else str(value)
