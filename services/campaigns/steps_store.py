"""The statements of campaigns' saga steps, one per step (common/steps.py
says how a step is carried out), and the target reads they share.

Each step statement is data-modifying CTEs: the guarded move, what comes
with it (the post job, the fence, the audit rows) and the record of
(decision_id, step) commit together or not at all, and its RETURNING is
the reply (no re-read). It reads the record itself and writes nothing when
there is one: a repeat is answered from that record, never re-evaluated
(docs/design.md "Saga step rules" 1)."""
from typing import NamedTuple

import sqlalchemy as sa

from common import steps
from common.db import UnitOfWork
from common.logs import request_id_var

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

_JOB_COLUMNS = ("job_id", "job_execute_at", "job_status")
_AUDIT_COLUMNS = ("audit_log (actor_id, actor_role, action, entity_type, entity_id, from_status, to_status, "
                  "correlation_id, detail)")
_ACTOR = "CAST(:aid AS uuid), CAST(:role AS text)"
_ONE = "FROM (SELECT) AS one LEFT JOIN prior ON true"

# submitted → approving for the decision, its record and audit row, for a
# target that is approvable by domain.APPROVABLE's values (campaign active,
# locked FOR SHARE first as in _LOCK_WITH_CAMPAIGN_SHARE; a creative;
# channel approved; scheduledAt between :earliest and :latest, the booking
# rules' bounds; the slot it holds since submit, in channel_slots). When it moves
# nothing it writes nothing, and the step is judged under the lock.
RESERVE = _statement(f"""
    WITH {steps.PRIOR},
    locked_campaign AS MATERIALIZED (
        SELECT id, status, advertiser_id, name FROM campaigns
         WHERE id = (SELECT campaign_id FROM targets WHERE id = :target_id)  -- immutable: read without a lock
           FOR SHARE),
    moved AS (
        UPDATE targets SET status = 'approving', reserved_by = :decision_id, updated_at = now()
         WHERE id = :target_id AND status = 'submitted' AND {steps.NO_PRIOR}
           AND EXISTS (SELECT FROM locked_campaign WHERE status = :campaign_status)
           AND EXISTS (SELECT FROM creatives cr WHERE cr.campaign_id = targets.campaign_id)
           AND EXISTS (SELECT FROM channels ch WHERE ch.id = targets.channel_id AND ch.status = :channel_status)
           AND scheduled_at >= CAST(:earliest AS timestamptz) AND scheduled_at <= CAST(:latest AS timestamptz)
        RETURNING *),
    step_record AS ({steps.record("moved", "'reserved'")}),
    audit AS (
        INSERT INTO {_AUDIT_COLUMNS}
        SELECT {_ACTOR}, 'target_reserved', 'target', id, 'submitted', 'approving', CAST(:corr AS text),
               jsonb_build_object('decision_id', CAST(:decision_id AS text))
          FROM moved)
    SELECT {steps.RETURNS}, v.* {_ONE}
      LEFT JOIN ({_view_sql(targets="moved", campaigns="locked_campaign")}) v ON true""",
    *steps.RETURNED_COLUMNS, *_VIEW_COLUMNS)

# approving → submitted when this decision holds the target (rule 4), else
# nothing ('noop'), and either way the decision is fenced: a reserve of it
# arriving later is refused, so a late duplicate cannot lock the target.
RELEASE = _statement(f"""
    WITH {steps.PRIOR},
    target AS (SELECT id FROM targets WHERE id = :target_id),
    moved AS (
        UPDATE targets SET status = 'submitted', reserved_by = NULL, updated_at = now()
         WHERE id = :target_id AND status = 'approving' AND reserved_by = :decision_id AND {steps.NO_PRIOR}
        RETURNING id),
    step_record AS ({steps.record("target", "CASE WHEN EXISTS (SELECT FROM moved) THEN 'released' ELSE 'noop' END")}),
    fence AS (
        INSERT INTO saga_steps (decision_id, step, target_id, outcome, detail)
        SELECT CAST(:decision_id AS uuid), 'reserve', id, 'refused', CAST(:fence AS jsonb) FROM target
         WHERE {steps.NO_PRIOR}
        ON CONFLICT DO NOTHING),
    audit AS (
        INSERT INTO {_AUDIT_COLUMNS}
        SELECT {_ACTOR}, 'target_released', 'target', id, 'approving', 'submitted', CAST(:corr AS text),
               jsonb_build_object('decision_id', CAST(:decision_id AS text))
          FROM moved)
    SELECT {steps.RETURNS} {_ONE}""", *steps.RETURNED_COLUMNS)

# approving → approved with its one post job, for the decision holding the
# target. Returns the post job in every case: a repeat answered from the
# record gets the job the recorded approval made.
APPROVE = _statement(f"""
    WITH {steps.PRIOR},
    moved AS (
        UPDATE targets SET status = 'approved', reserved_by = NULL, moderated_by = :moderator,
                           moderated_at = :now, moderation_reason = NULL, escrow_id = :escrow, updated_at = now()
         WHERE id = :target_id AND status = 'approving' AND reserved_by = :decision_id AND {steps.NO_PRIOR}
        RETURNING *),
    job AS (  -- a channel that does not auto-accept waits for its owner's answer (domain.ConsentRules)
        INSERT INTO post_jobs (id, target_id, execute_at, due_at, status, accept_by)
        SELECT CAST(:job AS uuid), m.id, m.scheduled_at, m.scheduled_at,
               CASE WHEN ch.auto_accept THEN 'queued' ELSE 'awaiting_publisher' END,
               CASE WHEN NOT ch.auto_accept
                    THEN LEAST(CAST(:now AS timestamptz) + make_interval(secs => :answer_s),
                               m.scheduled_at - make_interval(secs => :answer_lead_s)) END
          FROM moved m JOIN channels ch ON ch.id = m.channel_id
        RETURNING id, target_id, execute_at, status),
    step_record AS ({steps.record("moved", "'approved'", "jsonb_build_object('post_job_id', CAST(:job AS text))")}),
    audit AS (  -- ORDER BY: the target's row gets the lower id, as when they were two statements
        INSERT INTO {_AUDIT_COLUMNS}
        SELECT {_ACTOR}, a.action, a.entity_type, a.entity_id, a.from_status, a.to_status, CAST(:corr AS text),
               a.detail
          FROM (SELECT 1 AS n, 'target_approved' AS action, 'target' AS entity_type, id AS entity_id,
                       'approving' AS from_status, 'approved' AS to_status, CAST(:approved_detail AS jsonb) AS detail
                  FROM moved
                UNION ALL
                SELECT 2, 'post_job_created', 'post_job', id, NULL, status,
                       jsonb_build_object('target_id', CAST(:target_id AS text)) FROM job) a
         ORDER BY a.n)
    SELECT {steps.RETURNS}, j.id AS job_id, j.execute_at AS job_execute_at, j.status AS job_status, v.* {_ONE}
      LEFT JOIN (SELECT id, execute_at, status FROM job
                 UNION ALL
                 SELECT id, execute_at, status FROM post_jobs WHERE target_id = :target_id) j ON true
      LEFT JOIN ({_view_sql(targets="moved", post_jobs="job")}) v ON true""",
    *steps.RETURNED_COLUMNS, *_JOB_COLUMNS, *_VIEW_COLUMNS)

# submitted → rejected with the moderator's reason, for a reject decision.
REJECT = _statement(f"""
    WITH {steps.PRIOR},
    moved AS (
        UPDATE targets SET status = 'rejected', moderated_by = :moderator, moderated_at = :now,
                           moderation_reason = :reason, updated_at = now()
         WHERE id = :target_id AND status = 'submitted' AND {steps.NO_PRIOR}
        RETURNING *),
    step_record AS ({steps.record("moved", "'rejected'")}),
    audit AS (
        INSERT INTO {_AUDIT_COLUMNS}
        SELECT {_ACTOR}, 'target_rejected', 'target', id, 'submitted', 'rejected', CAST(:corr AS text),
               jsonb_build_object('moderator_id', CAST(:moderator AS text), 'reason', CAST(:reason AS text),
                                  'decision_id', CAST(:decision_id AS text))
          FROM moved)
    SELECT {steps.RETURNS}, v.* {_ONE}
      LEFT JOIN ({_view_sql(targets="moved")}) v ON true""",
    *steps.RETURNED_COLUMNS, *_VIEW_COLUMNS)


class PostJob(NamedTuple):
    id: object
    execute_at: object
    status: str


def post_job_of(row) -> PostJob | None:
    """The post job APPROVE returned (the new one, or the one a recorded
    approval made); None when the row has none."""
    job_id = row._mapping.get("job_id")
    return None if job_id is None else PostJob(job_id, row.job_execute_at, row.job_status)


async def snapshot(uow: UnitOfWork, target_id: str):
    """The target as moderation's snapshot shows it, or None."""
    return (await uow.execute(_SNAPSHOT, {"id": target_id})).one_or_none()


async def lock_target(uow: UnitOfWork, target_id: str):
    """The target's view locked FOR UPDATE, or None."""
    return (await uow.execute(_LOCK, {"id": target_id})).one_or_none()


async def lock_target_and_campaign(uow: UnitOfWork, target_id: str):
    """The target's view locked FOR UPDATE, its campaign FOR SHARE first,
    so its status cannot change until we commit; or None."""
    return (await uow.execute(_LOCK_WITH_CAMPAIGN_SHARE, {"id": target_id})).one_or_none()


def actor_params(actor) -> dict:
    """Who the audit rows name, and the request they belong to."""
    return {"aid": actor.id, "role": actor.role, "corr": request_id_var.get()}
