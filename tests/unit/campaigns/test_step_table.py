"""Campaigns' step table as data: every step's target move is one the
target state machine allows the system, and every step the table names is
one the saga_steps table accepts."""
import pytest

from common.fsm import assert_transition
from services.campaigns import domain
from services.campaigns.usecases.steps import STEP_MOVES, STEPS


def test_every_step_has_a_move_and_an_entry():
    assert set(STEP_MOVES) == set(STEPS) == {"reserve", "release", "approve", "reject"}


@pytest.mark.parametrize("step, move", sorted(STEP_MOVES.items()))
def test_each_step_moves_the_target_as_the_state_machine_allows(step, move):
    actor = "admin" if step == "reject" else "system"
    assert_transition(domain.TARGET_MOVES, *move, actor, subject=f"{step} step")


@pytest.mark.parametrize("step, done", [
    ("reserve", {"reserved"}), ("release", {"released", "noop"}), ("approve", {"approved"}), ("reject", {"rejected"})])
def test_what_each_step_answers_with_success(step, done):
    assert STEPS[step].done == done and STEPS[step].name == step
