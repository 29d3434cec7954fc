"""Campaigns' tables and queries (PostgreSQL). Every function runs inside
the caller's unit of work. Lock order, everywhere: campaign row, then its
target rows, then post jobs; a campaign cancellation takes them in the
same order, so the saga steps and the cascade never deadlock."""
import datetime as dt
import json
import uuid

import sqlalchemy as sa

from common.db import UnitOfWork
from common.logs import request_id_var
from services.campaigns import domain, publication


def new_id() -> str:
    return str(uuid.uuid4())


# ---- channels -------------------------------------------------------------
async def insert_channel(uow: UnitOfWork, *, owner_id: str, title: str, handle: str, price: int, currency: str,
                         chat_id: int, verified_at, auto_accept: bool):
    """The new listing; a second live listing of its chat or handle is
    refused by the unique indexes (common.db's unique violation, named
    LIVE_LISTING_INDEXES)."""
    return (await uow.execute(sa.text("""
        INSERT INTO channels (id, owner_id, title, handle, price_per_post, currency, chat_id, verified_at, auto_accept)
        VALUES (:id, :owner, :title, :handle, :price, :currency, :chat_id, :verified_at, :auto_accept) RETURNING *"""),
        {"id": new_id(), "owner": owner_id, "title": title, "handle": handle, "price": price,
         "currency": currency, "chat_id": chat_id, "verified_at": verified_at, "auto_accept": auto_accept})).one()


# The indexes that keep one live listing per chat and per handle (any case).
LIVE_LISTING_INDEXES = ("channels_one_live_per_chat", "channels_one_live_per_handle")


async def update_channel(uow: UnitOfWork, channel_id: str, *, title: str | None, price: int | None,
                         auto_accept: bool | None):
    """The fields given change; None leaves one as it is."""
    return (await uow.execute(sa.text("""
        UPDATE channels SET title = COALESCE(CAST(:title AS text), title),
                            price_per_post = COALESCE(CAST(:price AS bigint), price_per_post),
                            auto_accept = COALESCE(CAST(:auto_accept AS boolean), auto_accept), updated_at = now()
         WHERE id = :id RETURNING *"""),
        {"id": channel_id, "title": title, "price": price, "auto_accept": auto_accept})).one_or_none()


async def resubmit_channel(uow: UnitOfWork, channel_id: str, *, expected: str, chat_id: int, verified_at):
    """expected → pending with ownership proven again now; None when the
    channel is no longer `expected`."""
    return (await uow.execute(sa.text("""
        UPDATE channels SET status = 'pending', chat_id = :chat_id, verified_at = :verified_at,
                            rejection_reason = NULL, updated_at = now()
         WHERE id = :id AND status = :expected RETURNING *"""),
        {"id": channel_id, "expected": expected, "chat_id": chat_id, "verified_at": verified_at})).one_or_none()


async def suspend_channel(uow: UnitOfWork, channel_id, *, reason: str) -> bool:
    """approved → suspended (its owner lost the chat, or the bot cannot post)."""
    result = await uow.execute(sa.text("""
        UPDATE channels SET status = 'suspended', rejection_reason = :reason, updated_at = now()
         WHERE id = :id AND status = 'approved'"""), {"id": str(channel_id), "reason": reason[:domain.REASON_MAX]})
    return result.rowcount == 1


async def get_channel(uow: UnitOfWork, channel_id: str):
    return (await uow.execute(sa.text("SELECT * FROM channels WHERE id = :id"), {"id": channel_id})).one_or_none()


async def list_channels(uow: UnitOfWork, *, status: str | None, after: tuple | None, limit: int):
    return (await uow.execute(sa.text("""
        SELECT * FROM channels
         WHERE (CAST(:status AS text) IS NULL OR status = :status)
           AND (CAST(:at AS timestamptz) IS NULL OR (created_at, id) > (:at, :after_id))
         ORDER BY created_at, id LIMIT :limit"""),
        {"status": status, **_after(after), "limit": limit})).all()


async def moderate_channel(uow: UnitOfWork, channel_id: str, *, expected: list[str], status: str,
                           reason: str | None):
    """Guarded: None when the channel is in none of `expected`."""
    return (await uow.execute(sa.text("""
        UPDATE channels SET status = :status, rejection_reason = :reason, updated_at = now()
         WHERE id = :id AND status = ANY(:expected) RETURNING *"""),
        {"id": channel_id, "status": status, "reason": reason, "expected": expected})).one_or_none()


# ---- campaigns and creatives ---------------------------------------------
async def insert_campaign(uow: UnitOfWork, *, advertiser_id: str, name: str, start_at, end_at):
    return (await uow.execute(sa.text("""
        INSERT INTO campaigns (id, advertiser_id, name, start_at, end_at)
        VALUES (:id, :adv, :name, :start_at, :end_at) RETURNING *"""),
        {"id": new_id(), "adv": advertiser_id, "name": name, "start_at": start_at, "end_at": end_at})).one()


async def insert_creative(uow: UnitOfWork, campaign_id: str, text: str, media_url: str | None):
    return (await uow.execute(sa.text("""
        INSERT INTO creatives (id, campaign_id, text, media_url) VALUES (:id, :c, :text, :url)
        RETURNING id, text, media_url"""),
        {"id": new_id(), "c": campaign_id, "text": text, "url": media_url})).one()


async def get_campaign(uow: UnitOfWork, campaign_id: str, *, lock: str | None = None):
    """`lock`: None, 'share' (the status must not change under us) or 'update'."""
    suffix = {None: "", "share": " FOR SHARE", "update": " FOR UPDATE"}[lock]
    return (await uow.execute(sa.text(f"""
        SELECT c.*, (SELECT count(*) FROM creatives cr WHERE cr.campaign_id = c.id) AS creatives_count
          FROM campaigns c WHERE c.id = :id{suffix}"""), {"id": campaign_id})).one_or_none()


async def creatives_of(uow: UnitOfWork, campaign_ids: list) -> dict[str, list]:
    rows = (await uow.execute(sa.text("""
        SELECT campaign_id, id, text, media_url FROM creatives
         WHERE campaign_id = ANY(CAST(:ids AS uuid[])) ORDER BY seq"""),
        {"ids": [str(i) for i in campaign_ids]})).all()
    grouped: dict[str, list] = {str(i): [] for i in campaign_ids}
    for row in rows:
        grouped[str(row.campaign_id)].append(row)
    return grouped


async def list_campaigns(uow: UnitOfWork, *, advertiser_id: str | None, after: tuple | None, limit: int):
    return (await uow.execute(sa.text("""
        SELECT * FROM campaigns
         WHERE (CAST(:adv AS uuid) IS NULL OR advertiser_id = :adv)
           AND (CAST(:at AS timestamptz) IS NULL OR (created_at, id) > (:at, :after_id))
         ORDER BY created_at, id LIMIT :limit"""),
        {"adv": advertiser_id, **_after(after), "limit": limit})).all()


async def move_campaign(uow: UnitOfWork, campaign_id: str, *, expected: str, status: str):
    """Guarded: None when a concurrent change moved the campaign first."""
    return (await uow.execute(sa.text("""
        UPDATE campaigns SET status = :status, updated_at = now()
         WHERE id = :id AND status = :expected RETURNING *"""),
        {"id": campaign_id, "status": status, "expected": expected})).one_or_none()


# ---- targets --------------------------------------------------------------
_TARGET_VIEW = """
    SELECT t.*, c.status AS campaign_status, c.advertiser_id, c.name AS campaign_name,
           ch.status AS channel_status, ch.owner_id AS publisher_id, ch.title AS channel_title,
           ch.handle AS channel_handle, ch.price_per_post AS channel_price, ch.currency AS channel_currency,
           ch.rejection_reason AS channel_rejection_reason, ch.created_at AS channel_created_at,
           (SELECT count(*) FROM creatives cr WHERE cr.campaign_id = t.campaign_id) AS creatives_count,
           p.id AS post_job_id, p.execute_at AS post_job_execute_at, p.status AS post_job_status,
           p.message_url AS post_job_message_url, p.published_at AS post_job_published_at,
           p.verified_at AS post_job_verified_at, p.accept_by AS post_job_accept_by,
           p.answered_at AS post_job_answered_at, p.decline_reason AS post_job_decline_reason,
           COALESCE(p.failure_reason, CASE WHEN p.status = 'needs_review' THEN p.last_error END)
               AS post_job_failure_reason
      FROM targets t
      JOIN campaigns c ON c.id = t.campaign_id
      JOIN channels ch ON ch.id = t.channel_id
      LEFT JOIN post_jobs p ON p.target_id = t.id"""


async def insert_target(uow: UnitOfWork, *, campaign_id: str, channel_id: str, scheduled_at, price: int,
                        currency: str) -> str:
    target_id = new_id()
    await uow.execute(sa.text("""
        INSERT INTO targets (id, campaign_id, channel_id, scheduled_at, price, currency)
        VALUES (:id, :c, :ch, :at, :price, :currency)"""),
        {"id": target_id, "c": campaign_id, "ch": channel_id, "at": scheduled_at, "price": price,
         "currency": currency})
    return target_id


async def target_campaign_id(uow: UnitOfWork, target_id: str) -> str | None:
    """The campaign of a target (immutable, so readable without a lock)."""
    value = await uow.scalar(sa.text("SELECT campaign_id FROM targets WHERE id = :id"), {"id": target_id})
    return str(value) if value else None


# Built once: a text() parses its SQL for bind names on construction.
_GET_TARGET = {lock: sa.text(f"{_TARGET_VIEW} WHERE t.id = :id{' FOR UPDATE OF t' if lock else ''}")
               for lock in (False, True)}


async def get_target(uow: UnitOfWork, target_id: str, *, lock: bool = False):
    return (await uow.execute(_GET_TARGET[lock], {"id": target_id})).one_or_none()


async def list_targets(uow: UnitOfWork, *, campaign_id: str, after: tuple | None, limit: int):
    return (await uow.execute(sa.text(f"""{_TARGET_VIEW}
         WHERE t.campaign_id = :c AND (CAST(:at AS timestamptz) IS NULL OR (t.created_at, t.id) > (:at, :after_id))
         ORDER BY t.created_at, t.id LIMIT :limit"""),
        {"c": campaign_id, **_after(after), "limit": limit})).all()


async def list_submitted(uow: UnitOfWork, *, after: tuple | None, limit: int):
    return (await uow.execute(sa.text(f"""{_TARGET_VIEW}
         WHERE t.status = 'submitted'
           AND (CAST(:at AS timestamptz) IS NULL OR (t.submitted_at, t.id) > (:at, :after_id))
         ORDER BY t.submitted_at, t.id LIMIT :limit"""), {**_after(after), "limit": limit})).all()


async def lock_channel_bookings(uow: UnitOfWork, channel_id: str) -> None:
    """Serialises the bookings of one channel until the transaction ends, so
    the slot check that follows cannot race another booking."""
    await uow.execute(sa.text("SELECT 1 FROM channels WHERE id = :id FOR NO KEY UPDATE"), {"id": channel_id})


# Another booked post of the channel whose slot the slot [at, at + gap)
# would overlap (a post booked before slots were stored counts by its time).
_BOOKED_NEARBY = sa.text("""
    SELECT t.scheduled_at FROM targets t LEFT JOIN channel_slots s ON s.target_id = t.id
     WHERE t.channel_id = :channel AND t.id IS DISTINCT FROM CAST(:target AS uuid) AND t.status = ANY(:booked)
       AND CASE WHEN s.slot IS NULL
                THEN t.scheduled_at > CAST(:at AS timestamptz) - make_interval(mins => :gap)
                 AND t.scheduled_at < CAST(:at AS timestamptz) + make_interval(mins => :gap)
                ELSE s.slot && tstzrange(CAST(:at AS timestamptz), CAST(:at AS timestamptz) + make_interval(mins => :gap))
           END
     ORDER BY t.scheduled_at LIMIT 1""")


async def booked_nearby(uow: UnitOfWork, channel_id: str, at, gap_minutes: int, booked: tuple[str, ...],
                        target_id: str | None = None):
    """The time of another post of the channel booked too close to `at`, or None."""
    return (await uow.execute(_BOOKED_NEARBY, {
        "channel": channel_id, "target": target_id, "at": at, "gap": gap_minutes, "booked": list(booked)})).scalar()


async def book_target(uow: UnitOfWork, target_id: str, *, expected: str, now, gap_minutes: int) -> bool:
    """expected → submitted: the target books its slot [scheduledAt,
    scheduledAt + gap) in channel_slots (whose exclusion constraint refuses
    an overlap) and any earlier verdict is cleared. False when the target is
    no longer `expected`."""
    result = await uow.execute(sa.text("""
        WITH moved AS (
            UPDATE targets SET status = 'submitted', updated_at = now(), submitted_at = :now, moderated_by = NULL,
                               moderated_at = NULL, moderation_reason = NULL
             WHERE id = :id AND status = :expected
            RETURNING id, channel_id, scheduled_at)
        INSERT INTO channel_slots (target_id, channel_id, slot)
        SELECT id, channel_id, tstzrange(scheduled_at, scheduled_at + make_interval(mins => :gap)) FROM moved"""),
        {"id": target_id, "expected": expected, "now": now, "gap": gap_minutes})
    return result.rowcount == 1


async def count_open_targets(uow: UnitOfWork, campaign_id: str, statuses: tuple[str, ...]) -> int:
    return (await uow.execute(sa.text(
        "SELECT count(*) FROM targets WHERE campaign_id = :c AND status = ANY(:statuses)"),
        {"c": campaign_id, "statuses": list(statuses)})).scalar()


async def move_target(uow: UnitOfWork, target_id: str, *, expected: list[str], status: str, **fields) -> bool:
    """Guarded status change; extra `fields` are set with it (column=value).
    False when the target is no longer in one of `expected`."""
    sets = "".join(f", {column} = :{column}" for column in fields)
    result = await uow.execute(sa.text(f"""
        UPDATE targets SET status = :status, updated_at = now(){sets}
         WHERE id = :id AND status = ANY(:expected)"""),
        {"id": target_id, "status": status, "expected": expected, **fields})
    return result.rowcount == 1


async def cancel_open_targets(uow: UnitOfWork, campaign_id: str, statuses: list[str]) -> list:
    """Cancels every target of the campaign in `statuses`; returns (id,
    previous status) of each. The row locks make a concurrent saga step
    either finish first (and its new status is what we see) or wait."""
    return (await uow.execute(sa.text("""
        WITH old AS (
            SELECT id, status FROM targets WHERE campaign_id = :c AND status = ANY(:statuses) FOR UPDATE),
        -- A post job that left the queue decides its target's money: that
        -- target is not cancelled (its job row is locked, so no worker
        -- claims it meanwhile; every job is judged on its latest status).
        jobs AS (
            SELECT target_id, status FROM post_jobs WHERE target_id IN (SELECT id FROM old) FOR UPDATE)
        UPDATE targets t SET status = 'cancelled', reserved_by = NULL, updated_at = now()
          FROM old WHERE t.id = old.id
           AND old.id NOT IN (SELECT target_id FROM jobs WHERE status <> ALL(:not_started))
        RETURNING t.id, old.status AS previous"""),
        {"c": campaign_id, "statuses": statuses, "not_started": sorted(publication.NOT_STARTED)})).all()


async def get_post_job(uow: UnitOfWork, target_id: str):
    return (await uow.execute(sa.text("SELECT id, execute_at, status FROM post_jobs WHERE target_id = :t"),
                              {"t": target_id})).one_or_none()


async def cancel_queued_post_jobs(uow: UnitOfWork, target_ids: list) -> list:
    """Jobs not yet out (awaiting their owner's answer, or queued) of
    cancelled targets; (id, target_id, previous status) of each. The
    callers hold the targets' rows, so `old` (this statement's snapshot)
    is the status each job is moved from."""
    return (await uow.execute(sa.text("""
        UPDATE post_jobs p SET status = 'cancelled', updated_at = now()
          FROM post_jobs old WHERE old.id = p.id
           AND p.target_id = ANY(CAST(:ids AS uuid[])) AND p.status = ANY(:cancellable)
        RETURNING p.id, p.target_id, old.status AS previous"""),
        {"ids": [str(i) for i in target_ids], "cancellable": sorted(publication.CANCELLABLE)})).all()


async def target_audit(uow: UnitOfWork, *, after: tuple | None, limit: int):
    return (await uow.execute(sa.text("""
        SELECT t.id, t.status, t.reserved_by, t.created_at, c.advertiser_id,
               (SELECT count(*) FROM post_jobs p WHERE p.target_id = t.id) AS post_jobs,
               CASE WHEN p.message_id IS NOT NULL THEN p.chat_id END AS posted_chat_id,
               ch.chat_id AS listing_chat_id, p.owner_telegram_user_id,
               COALESCE(p.message_id IS NOT NULL AND NOT p.posted_before_ownership, false) AS posted_since_ownership
          FROM targets t JOIN campaigns c ON c.id = t.campaign_id
          JOIN channels ch ON ch.id = t.channel_id
          LEFT JOIN post_jobs p ON p.target_id = t.id
         WHERE CAST(:at AS timestamptz) IS NULL OR (t.created_at, t.id) > (:at, :after_id)
         ORDER BY t.created_at, t.id LIMIT :limit"""), {**_after(after), "limit": limit})).all()


# ---- audit ----------------------------------------------------------------
async def audit(uow: UnitOfWork, actor, action: str, entity_type: str, entity_id, *,
                from_status: str | None = None, to_status: str | None = None, detail: dict | None = None) -> None:
    """One audit row, in the transaction of the change it records."""
    await uow.execute(sa.text("""
        INSERT INTO audit_log (actor_id, actor_role, action, entity_type, entity_id, from_status, to_status,
                               correlation_id, detail)
        VALUES (:aid, :role, :action, :etype, :eid, :frm, :to, :corr, CAST(:detail AS jsonb))"""),
        {"aid": actor.id, "role": actor.role, "action": action, "etype": entity_type, "eid": str(entity_id),
         "frm": from_status, "to": to_status, "corr": request_id_var.get(), "detail": json.dumps(detail or {})})


def _after(after: tuple | None) -> dict:
    at, after_id = after if after else (None, None)
    return {"at": at, "after_id": str(after_id) if after_id else None}


def page_key(row, column: str = "created_at") -> tuple[dt.datetime, str]:
    return getattr(row, column), str(row.id)
