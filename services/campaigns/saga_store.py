"""The approve saga steps' statements: each step is one locking read and
one write, so a step costs BEGIN, two statements and COMMIT.

The write of a step is a single statement of data-modifying CTEs: the
guarded move, the post job, the record of (decision_id, step) and the audit
rows commit together or not at all, and its RETURNING is the reply (no
re-read). It re-reads the record itself, after the target lock was taken
by the locking read, and writes nothing when there is one: a repeat that
queued behind the call that decided is answered from that record, never
re-evaluated (DESIGN.md "Saga step rules" 1)."""
import json
from typing import NamedTuple

import sqlalchemy as sa

from common.db import UnitOfWork
from common.logs import request_id_var
from services.campaigns.store import new_id

# What a step (and the snapshot) needs of a target: the approve
# preconditions and the reply (api.target_pb, api.snapshot_pb), nothing
# more. Named in order with text().columns(): SQLAlchemy then matches result
# columns by position and keeps the result metadata with the compiled
# statement, instead of rebuilding it from cursor.description every call.
_VIEW_COLUMNS = (
    "id", "campaign_id", "channel_id", "scheduled_at", "price", "currency", "status", "moderated_by",
    "moderated_at", "moderation_reason", "submitted_at", "reserved_by", "campaign_status", "advertiser_id",
    "channel_status", "publisher_id", "creatives_count", "post_job_id", "post_job_execute_at", "post_job_status")


def _view_sql(targets: str = "targets", campaigns: str = "campaigns", post_jobs: str = "post_jobs") -> str:
    """The target with its campaign, channel and post job. Each source may
    name a CTE instead of the table: rows a statement locked or just wrote
    (which its own snapshot cannot see)."""
    return f"""
    SELECT t.id, t.campaign_id, t.channel_id, t.scheduled_at, t.price, t.currency, t.status, t.moderated_by,
           t.moderated_at, t.moderation_reason, t.submitted_at, t.reserved_by,
           c.status AS campaign_status, c.advertiser_id, ch.status AS channel_status, ch.owner_id AS publisher_id,
           (SELECT count(*) FROM creatives cr WHERE cr.campaign_id = t.campaign_id) AS creatives_count,
           p.id AS post_job_id, p.execute_at AS post_job_execute_at, p.status AS post_job_status
      FROM {targets} t
      JOIN {campaigns} c ON c.id = t.campaign_id
      JOIN channels ch ON ch.id = t.channel_id
      LEFT JOIN {post_jobs} p ON p.target_id = t.id"""


def _statement(sql: str, *columns: str) -> sa.TextClause:
    return sa.text(sql).columns(*(sa.column(name) for name in columns))

# The campaign is locked before the target, the order of every other path
# (store.py's docstring), and so never deadlocks with a campaign
# cancellation (which updates the campaign row, then locks its targets).
# Why the order holds in one statement: the target row is locked only by
# the top-level LockRows node (FOR UPDATE OF t), which locks a row as it
# comes out of the join, and the join cannot produce a row before the
# `locked_campaign` CTE has returned its row, which is locked inside the CTE
# (MATERIALIZED: its own plan, run before its first row is read). A wait for
# the campaign therefore never holds the target. Both rows are read at their
# latest committed version after any wait (READ COMMITTED re-checks a locked
# row), and the campaign's columns come from the locked CTE row, never from
# the statement's older snapshot.
_LOCK_WITH_CAMPAIGN_SHARE = _statement(f"""
    WITH locked_campaign AS MATERIALIZED (
        SELECT id, status, advertiser_id, name FROM campaigns
         WHERE id = (SELECT campaign_id FROM targets WHERE id = :id)  -- immutable: read without a lock
           FOR SHARE)
    {_view_sql(campaigns="locked_campaign")}
     WHERE t.id = :id FOR UPDATE OF t""", *_VIEW_COLUMNS)
_LOCK = _statement(f"{_view_sql()} WHERE t.id = :id FOR UPDATE OF t", *_VIEW_COLUMNS)
_SNAPSHOT = _statement(f"{_view_sql()} WHERE t.id = :id", *_VIEW_COLUMNS)

# The record of this (decision, step), as of the write statement's snapshot,
# taken after the target lock: any call for this target that decided before
# us has committed by now.
_PRIOR = """prior AS (
        SELECT outcome, detail, target_id FROM saga_steps WHERE decision_id = CAST(:d AS uuid) AND step = :step)"""
_RECORDED = "prior.outcome AS recorded_outcome, prior.detail AS recorded_detail, prior.target_id AS recorded_for"
_RECORDED_COLUMNS = ("recorded_outcome", "recorded_detail", "recorded_for")
_JOB_COLUMNS = ("job_id", "job_execute_at", "job_status")
_AUDIT_COLUMNS = ("audit_log (actor_id, actor_role, action, entity_type, entity_id, from_status, to_status, "
                  "correlation_id, detail)")
_ACTOR = "CAST(:aid AS uuid), CAST(:role AS text)"

def _reserve_statement(*, judged_here: bool) -> sa.TextClause:
    """submitted → approving for the decision, its record and audit row,
    unless the step is recorded already.

    judged_here=False: the caller judged the locked target already (the
    slow path). judged_here=True: the one-statement path, which judges
    nothing but moves only a target that is approvable by
    domain.APPROVABLE's values (campaign active, locked FOR SHARE first
    as in _LOCK_WITH_CAMPAIGN_SHARE; a creative; channel approved;
    scheduledAt no earlier than :earliest). When it moves nothing it wrote
    nothing, and the caller judges under the lock and records why."""
    campaign_lock = """,
    locked_campaign AS MATERIALIZED (
        SELECT id, status, advertiser_id, name FROM campaigns
         WHERE id = (SELECT campaign_id FROM targets WHERE id = :id)  -- immutable: read without a lock
           FOR SHARE)""" if judged_here else ""
    approvable = """
           AND EXISTS (SELECT FROM locked_campaign WHERE status = :campaign_status)
           AND EXISTS (SELECT FROM creatives cr WHERE cr.campaign_id = targets.campaign_id)
           AND EXISTS (SELECT FROM channels ch WHERE ch.id = targets.channel_id AND ch.status = :channel_status)
           AND scheduled_at >= CAST(:earliest AS timestamptz)""" if judged_here else ""
    return _statement(f"""
    WITH {_PRIOR}{campaign_lock},
    moved AS (
        UPDATE targets SET status = 'approving', reserved_by = :d, updated_at = now()
         WHERE id = :id AND status = 'submitted' AND NOT EXISTS (SELECT FROM prior){approvable}
        RETURNING *),
    step_record AS (
        INSERT INTO saga_steps (decision_id, step, target_id, outcome, detail)
        SELECT CAST(:d AS uuid), 'reserve', id, 'reserved', CAST('{{}}' AS jsonb) FROM moved),
    audit AS (
        INSERT INTO {_AUDIT_COLUMNS}
        SELECT {_ACTOR}, 'target_reserved', 'target', id, 'submitted', 'approving', CAST(:corr AS text),
               CAST(:detail AS jsonb)
          FROM moved)
    SELECT {_RECORDED}, v.*
      FROM (SELECT) AS one
      LEFT JOIN prior ON true
      LEFT JOIN ({_view_sql(targets="moved", campaigns="locked_campaign" if judged_here else "campaigns")}) v ON true""",
        *_RECORDED_COLUMNS, *_VIEW_COLUMNS)


_RESERVE = _reserve_statement(judged_here=False)
_RESERVE_IF_APPROVABLE = _reserve_statement(judged_here=True)

_APPROVE = _statement(f"""
    WITH {_PRIOR},
    moved AS (
        UPDATE targets SET status = 'approved', reserved_by = NULL, moderated_by = :moderator,
                           moderated_at = :now, moderation_reason = NULL, escrow_id = :escrow, updated_at = now()
         WHERE id = :id AND status = 'approving' AND reserved_by = :d AND NOT EXISTS (SELECT FROM prior)
        RETURNING *),
    job AS (
        INSERT INTO post_jobs (id, target_id, execute_at)
        SELECT CAST(:job AS uuid), id, scheduled_at FROM moved
        RETURNING id, target_id, execute_at, status),
    step_record AS (
        INSERT INTO saga_steps (decision_id, step, target_id, outcome, detail)
        SELECT CAST(:d AS uuid), 'approve', id, 'approved', CAST(:step_detail AS jsonb) FROM moved),
    audit AS (  -- ORDER BY: the target's row gets the lower id, as when they were two statements
        INSERT INTO {_AUDIT_COLUMNS}
        SELECT {_ACTOR}, a.action, a.entity_type, a.entity_id, a.from_status, a.to_status, CAST(:corr AS text),
               a.detail
          FROM (SELECT 1 AS n, 'target_approved' AS action, 'target' AS entity_type, id AS entity_id,
                       'approving' AS from_status, 'approved' AS to_status, CAST(:approved_detail AS jsonb) AS detail
                  FROM moved
                UNION ALL
                SELECT 2, 'post_job_created', 'post_job', id, NULL, 'queued', CAST(:job_detail AS jsonb) FROM job) a
         ORDER BY a.n)
    SELECT {_RECORDED}, j.id AS job_id, j.execute_at AS job_execute_at, j.status AS job_status, v.*
      FROM (SELECT) AS one
      LEFT JOIN prior ON true
      LEFT JOIN (SELECT id, execute_at, status FROM job
                 UNION ALL
                 SELECT id, execute_at, status FROM post_jobs WHERE target_id = :id) j ON true
      LEFT JOIN ({_view_sql(targets="moved", post_jobs="job")}) v ON true""",
    *_RECORDED_COLUMNS, *_JOB_COLUMNS, *_VIEW_COLUMNS)

_REFUSE = _statement(f"""
    WITH {_PRIOR},
    step_record AS (
        INSERT INTO saga_steps (decision_id, step, target_id, outcome, detail)
        SELECT CAST(:d AS uuid), :step, CAST(:id AS uuid), 'refused', CAST(:detail AS jsonb)
         WHERE NOT EXISTS (SELECT FROM prior))
    SELECT {_RECORDED}, p.id AS job_id, p.execute_at AS job_execute_at, p.status AS job_status
      FROM (SELECT) AS one
      LEFT JOIN prior ON true
      LEFT JOIN post_jobs p ON p.target_id = :id""", *_RECORDED_COLUMNS, *_JOB_COLUMNS)


class PostJob(NamedTuple):
    id: object
    execute_at: object
    status: str


def post_job_of(row) -> PostJob | None:
    """The post job a step's write returned (the new one, or the one a
    recorded approval made)."""
    return None if row.job_id is None else PostJob(row.job_id, row.job_execute_at, row.job_status)


async def snapshot(uow: UnitOfWork, target_id: str):
    """The target as moderation's snapshot shows it, or None."""
    return (await uow.execute(_SNAPSHOT, {"id": target_id})).one_or_none()


async def lock_target(uow: UnitOfWork, target_id: str, *, campaign_share: bool = False):
    """The target (store's view) locked FOR UPDATE, or None. `campaign_share`:
    its campaign is locked FOR SHARE first, so its status cannot change until
    we commit."""
    statement = _LOCK_WITH_CAMPAIGN_SHARE if campaign_share else _LOCK
    return (await uow.execute(statement, {"id": target_id})).one_or_none()


def _actor(actor) -> dict:
    """Who the audit rows name, and the request they belong to."""
    return {"aid": actor.id, "role": actor.role, "corr": request_id_var.get()}


async def reserve(uow: UnitOfWork, actor, target_id: str, decision_id: str):
    """submitted → approving for the decision (judged by the caller), its
    record and audit row, unless the step is recorded already. The row:
    `recorded_*` (the prior record, if any), then the target's view after
    the move."""
    return (await uow.execute(_RESERVE, {"id": target_id, "d": decision_id, "step": "reserve",
                                         "detail": json.dumps({"decision_id": decision_id}), **_actor(actor)})).one()


async def reserve_if_approvable(uow: UnitOfWork, actor, target_id: str, decision_id: str, approvable,
                                earliest):
    """`reserve` in one statement for a target that is approvable by
    `approvable` (domain.Approvable) with scheduledAt >= `earliest`;
    otherwise it writes nothing and the view columns are NULL."""
    return (await uow.execute(_RESERVE_IF_APPROVABLE, {
        "id": target_id, "d": decision_id, "step": "reserve", "detail": json.dumps({"decision_id": decision_id}),
        "campaign_status": approvable.campaign_status, "channel_status": approvable.channel_status,
        "earliest": earliest, **_actor(actor)})).one()


async def approve(uow: UnitOfWork, actor, target_id: str, decision_id: str, *, moderator_id: str, escrow_id: str,
                  now):
    """approving → approved with its post job, the record and both audit
    rows, unless the step is recorded already. The row: `recorded_*`, the
    post job (`job_*`; the recorded approval's one on a repeat), then the
    target's view after the move."""
    job_id = new_id()
    return (await uow.execute(_APPROVE, {
        "id": target_id, "d": decision_id, "step": "approve", "moderator": moderator_id, "now": now,
        "escrow": escrow_id, "job": job_id, "step_detail": json.dumps({"post_job_id": job_id}),
        "approved_detail": json.dumps({"decision_id": decision_id, "moderator_id": moderator_id,
                                       "escrow_id": escrow_id, "post_job_id": job_id}),
        "job_detail": json.dumps({"target_id": target_id}),
        **_actor(actor)})).one()


async def refuse(uow: UnitOfWork, target_id: str, decision_id: str, step: str, detail: dict):
    """Records the refusal of a step, unless the step is recorded already.
    The row: `recorded_*`, and the target's post job (`job_*`) if any."""
    return (await uow.execute(_REFUSE, {"id": target_id, "d": decision_id, "step": step,
                                        "detail": json.dumps(detail)})).one()
