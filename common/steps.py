"""How a participant carries out a saga step (docs/design.md, saga step rules 1
and 2): a step is decided once per (decision, step), and every repeat gets
the recorded answer, never a new judgement.

The record is one row of the participant's `saga_steps` table:
(decision_id, step) → outcome, detail, target_id. A step is ONE statement
(`Step.move`) built from the blocks below: it reads the record (`PRIOR`),
makes its guarded move only when there is none, records the outcome it
reached (`record`) and returns both (`RETURNS`). In the usual case that is
the whole step: one round trip, its own transaction.

When the statement moved nothing and found no record, the target was not
in the state the move needs: `Participant.carry_out` (common/participant.py)
then locks the target,
asks the step's `judge` why, and runs the move again (it moves) or records
the refusal (`Participant.refuse`); both re-read the record under the lock,
so a call that queued behind the one that decided is answered from its
record. A unique violation on the record's key has one meaning, "decided
already": the statement's writes are undone with it, and the step runs
again and answers from the record.

This module is pure (SQL text and rules); domains use its record and
answer."""
import dataclasses
import json
from collections.abc import Mapping

from common.errors import AlreadyExists, DomainError, PreconditionFailed
from common.reasons import Reason

RECORD_KEY = "saga_steps_pkey"

# The record of this (decision, step), as of the statement's snapshot.
PRIOR = """prior AS (
        SELECT outcome, detail, target_id FROM saga_steps
         WHERE decision_id = CAST(:decision_id AS uuid) AND step = :step)"""

NO_PRIOR = "NOT EXISTS (SELECT FROM prior)"


def record(source: str, outcome: str, detail: str = "CAST('{}' AS jsonb)", target: str = "id") -> str:
    """A CTE body recording `outcome` (an SQL expression) for each row of
    `source`, unless the step has a record already."""
    return f"""INSERT INTO saga_steps (decision_id, step, target_id, outcome, detail)
               SELECT CAST(:decision_id AS uuid), :step, {target}, {outcome}, {detail} FROM {source}
                WHERE {NO_PRIOR}
               RETURNING outcome, detail"""


# What every step statement returns first: the record found, and the
# outcome written now with its detail (from its `step_record` CTE). Put
# `FROM (SELECT) AS one LEFT JOIN prior ON true` under them.
RETURNS = """prior.outcome AS recorded_outcome, prior.detail AS recorded_detail, prior.target_id AS recorded_for,
           (SELECT outcome FROM step_record) AS decided, (SELECT detail FROM step_record) AS decided_detail"""
RETURNED_COLUMNS = ("recorded_outcome", "recorded_detail", "recorded_for", "decided", "decided_detail")


class StepRefused(PreconditionFailed):
    """A participant's definite no to a step. Recorded with its reason, so
    every repeat of the step gets the same answer."""


@dataclasses.dataclass(frozen=True)
class StepRecord:
    outcome: str
    detail: dict
    target_id: str


def _json(value) -> dict:
    return json.loads(value) if isinstance(value, str) else value


def record_of(row, target_id: str) -> StepRecord | None:
    """The step's record as the statement left it: the one it found, or
    the one it wrote (for `target_id`); None when there is neither."""
    if row.recorded_outcome is not None:
        return StepRecord(row.recorded_outcome, _json(row.recorded_detail), str(row.recorded_for))
    if row.decided is not None:
        return StepRecord(row.decided, _json(row.decided_detail), target_id)
    return None


def answer(record: StepRecord, *, decision_id: str, target_id: str, done: frozenset[str],
           refusal_kinds: Mapping[str, type[DomainError]] | None = None) -> str:
    """The step's answer from its record: the outcome when it is one of
    `done`, else the recorded refusal raised; a record of another target
    means the decision id was reused (refused, nothing done)."""
    if record.target_id != target_id:
        raise AlreadyExists(f"decision {decision_id} belongs to another target", code=Reason.DECISION_REUSED)
    if record.outcome not in done:
        raise refusal_from(record.detail, refusal_kinds)
    return record.outcome


def refusal_from(detail: Mapping, kinds: Mapping[str, type[DomainError]] | None = None) -> DomainError:
    """The recorded refusal as the error it was first answered with
    (`kinds` names the reasons that are not plain StepRefused)."""
    kind = (kinds or {}).get(detail["code"], StepRefused)
    return kind(detail["message"], code=detail["code"])


