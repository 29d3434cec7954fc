"""Campaigns' step table as data: the whole table (every step, what it
answers with success, its statement, whether it is judged under the lock)
and the target move each step makes, with who the state machine lets make
it. Adding, removing or changing a step fails here until this test is
changed on purpose."""
import pytest

from common.fsm import assert_transition
from services.campaigns import domain, steps_store
from services.campaigns.usecases.steps import STEP_MOVES, STEPS

# step -> (recorded name, outcomes answered as success, its one statement, judged under the lock when it moved nothing)
STEP_TABLE = {
    "reserve": ("reserve", {"reserved"}, steps_store.RESERVE, True),
    "release": ("release", {"released", "noop"}, steps_store.RELEASE, False),
    "approve": ("approve", {"approved"}, steps_store.APPROVE, True),
    "reject": ("reject", {"rejected"}, steps_store.REJECT, True),
}

# step -> (from, to, the actors domain.TARGET_MOVES allows that move)
MOVE_TABLE = {
    "reserve": ("submitted", "approving", {"system"}),
    "release": ("approving", "submitted", {"system"}),
    "approve": ("approving", "approved", {"system"}),
    "reject": ("submitted", "rejected", {"admin"}),
}


def test_the_step_table_is_exactly_the_designed_one():
    assert {name: (step.name, set(step.done), step.move, step.judge is not None) for name, step in STEPS.items()} \
        == STEP_TABLE


def test_each_step_makes_exactly_its_designed_move_by_exactly_its_designed_actors():
    assert {name: (*move, set(domain.TARGET_MOVES[move])) for name, move in STEP_MOVES.items()} == MOVE_TABLE


@pytest.mark.parametrize("step", sorted(MOVE_TABLE))
def test_each_step_moves_the_target_as_the_state_machine_allows(step):
    frm, to, actors = MOVE_TABLE[step]
    for actor in actors:
        assert_transition(domain.TARGET_MOVES, frm, to, actor, subject=f"{step} step")
