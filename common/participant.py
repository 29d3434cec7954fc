"""Carries out a participant's saga steps from its step table: the step's
one statement, and, only when it moved nothing and found no record, a
judgement under the target's lock (common/steps.py says why)."""
import dataclasses
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import sqlalchemy as sa

from common.db import Database, UnitOfWork
from common.errors import Conflict, DomainError, NotFound
from common.steps import PRIOR, RECORD_KEY, RETURNED_COLUMNS, RETURNS, answer, record, record_of

# A refusal judged under the target's lock, recorded unless the step has a
# record already.
_REFUSE = f"""
    WITH {PRIOR},
    step_record AS ({record("(SELECT) AS one", "'refused'", "CAST(:refusal AS jsonb)", "CAST(:target_id AS uuid)")})
    SELECT {RETURNS} FROM (SELECT) AS one LEFT JOIN prior ON true"""


@dataclasses.dataclass(frozen=True)
class Step:
    """One step of a participant, as data.

    - `name`: as recorded (`saga_steps.step`).
    - `done`: the outcomes that answer the step with success.
    - `move`: its one statement (common/steps.py's docstring); parameters
      `decision_id`, `step`, `target_id` plus the step's own.
    - `judge`: why the step is refused now, given the locked target (a
      DomainError, usually StepRefused), or None when it should move. No
      judge: the move decides every case itself (it records an outcome
      whenever the target exists)."""
    name: str
    done: frozenset[str]
    move: sa.TextClause
    judge: Callable[[Any, Mapping], DomainError | None] | None = None


@dataclasses.dataclass(frozen=True)
class StepOutcome:
    """What a step answered: the outcome, the row of the move (or of the
    record), and the target as locked when the step was judged under its
    lock (None on the one-statement path)."""
    outcome: str
    row: Any
    locked_target: Any = None

    @property
    def repeated(self) -> bool:
        return self.row.decided is None

    @property
    def target(self):
        """The target as the step left it: the row its move returned, or as
        it was locked when the step was answered from its record."""
        return self.locked_target if self.repeated else self.row


class Participant:
    """Carries out the steps of one participant (its step table) on its database."""

    def __init__(self, db: Database, steps: Mapping[str, Step], *,
                 lock_target: Callable[[UnitOfWork, str], Awaitable[Any]], target_missing: str,
                 refusal_kinds: Mapping[str, type[DomainError]] | None = None):
        self.db = db
        self.steps = dict(steps)
        self.lock_target = lock_target
        self.target_missing = target_missing
        self.refusal_kinds = dict(refusal_kinds or {})
        self._refuse = sa.text(_REFUSE).columns(*(sa.column(name) for name in RETURNED_COLUMNS))

    async def carry_out(self, name: str, target_id: str, decision_id: str, params: Mapping | None = None) -> StepOutcome:
        step = self.steps[name]
        params = {**(params or {}), "decision_id": decision_id, "step": step.name, "target_id": target_id}
        return await self.db.retrying(lambda: self._once(step, params), unique_violation=RECORD_KEY)

    async def _once(self, step: Step, params: dict) -> StepOutcome:
        async with self.db.single_statement(f"{step.name}_step") as uow:
            row = (await uow.execute(step.move, params)).one()
        if row.decided is not None:
            return self._answer(step, row, params)
        if step.judge is None and row.recorded_outcome is not None:
            return self._answer(step, row, params)
        async with self.db.unit_of_work(f"{step.name}_step_under_lock") as uow:
            target = await self.lock_target(uow, params["target_id"])
            if target is None:
                raise NotFound(self.target_missing)
            refusal = step.judge(target, params) if step.judge is not None else None
            if refusal is None:
                row = (await uow.execute(step.move, params)).one()
            else:
                row = (await uow.execute(self._refuse, {
                    **params, "refusal": json.dumps({"code": refusal.code, "message": refusal.message})})).one()
            if row.decided is None and row.recorded_outcome is None:
                # Cannot happen: the locked target was judged movable.
                raise Conflict("the target changed concurrently; try again")
            await uow.commit()
        return self._answer(step, row, params, target, refusal)

    def _answer(self, step: Step, row, params: Mapping, target=None, refusal: DomainError | None = None) -> StepOutcome:
        if refusal is not None and row.decided is not None:
            raise refusal  # judged and recorded just now
        found = record_of(row, params["target_id"])
        outcome = answer(found, decision_id=params["decision_id"], target_id=params["target_id"], done=step.done,
                         refusal_kinds=self.refusal_kinds)
        return StepOutcome(outcome, row, target)
