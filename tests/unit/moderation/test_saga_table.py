"""The approve saga's lifecycle table, whole: every move and who makes it,
every other move refused, which states are live and which settled, the
outbox topics of its steps, and how a peer's answer is classified.
Adding or removing a move, a state or a topic fails here until this test
is changed on purpose."""
import itertools

import grpc
import pytest

from common.errors import Forbidden, PreconditionFailed
from common.fsm import assert_transition
from common.grpc_errors import is_definite_refusal
from common.outbox import RelayPolicy
from services.moderation import domain
from services.moderation.saga import DecisionSagas

STATES = ["pending", "reserved", "escrow_held", "approved", "compensating", "failed", "rejected"]
# DESIGN.md "State machines": approve saga, plus the reject decision's one move.
SAGA_TABLE = {
    ("pending", "reserved"): {"system"},
    ("pending", "failed"): {"system"},
    ("reserved", "escrow_held"): {"system"},
    ("reserved", "failed"): {"system"},
    ("escrow_held", "approved"): {"system"},
    ("escrow_held", "compensating"): {"system"},
    ("compensating", "failed"): {"system"},
    ("pending", "rejected"): {"system"},
}
ACTORS = ["advertiser", "publisher", "admin", "system"]
# Answers that say the peer decided (and said no); everything else may hide a commit.
DEFINITE = {grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.OUT_OF_RANGE,
            grpc.StatusCode.NOT_FOUND, grpc.StatusCode.ALREADY_EXISTS, grpc.StatusCode.PERMISSION_DENIED}


def test_the_saga_table_is_exactly_the_designed_one():
    assert {move: set(actors) for move, actors in domain.SAGA_MOVES.items()} == SAGA_TABLE


def test_the_table_names_no_state_but_the_designed_ones():
    assert {state for move in domain.SAGA_MOVES for state in move} == set(STATES)


@pytest.mark.parametrize("current,wanted", sorted(SAGA_TABLE))
def test_saga_moves_forward_or_into_its_compensation(current, wanted):
    domain.assert_saga_move(current, wanted)


@pytest.mark.parametrize("current,wanted", [m for m in itertools.product(STATES, STATES) if m not in SAGA_TABLE])
def test_every_other_saga_move_is_refused(current, wanted):
    with pytest.raises(PreconditionFailed):
        domain.assert_saga_move(current, wanted)


@pytest.mark.parametrize("move", sorted(SAGA_TABLE))
@pytest.mark.parametrize("actor", [a for a in ACTORS if a != "system"])
def test_only_the_system_moves_a_saga(move, actor):
    with pytest.raises(Forbidden):
        assert_transition(domain.SAGA_MOVES, *move, actor)


def test_a_held_escrow_is_never_abandoned_by_a_direct_failure():
    assert ("escrow_held", "failed") not in domain.SAGA_MOVES


def test_live_and_settled_states_are_exactly_the_designed_ones():
    # LIVE's order is the one the partial unique index names (store.py builds its SQL from it).
    assert domain.LIVE == ("pending", "reserved", "escrow_held", "compensating")
    assert domain.SETTLED == {"approved", "failed", "rejected"}


def test_settled_and_live_states_partition_the_saga_states():
    assert set(domain.LIVE).isdisjoint(domain.SETTLED)
    assert set(domain.LIVE) | domain.SETTLED == set(STATES)


def test_a_settled_state_has_no_way_out_and_a_live_one_has_one():
    sources = {frm for frm, _ in domain.SAGA_MOVES}
    assert sources == set(domain.LIVE)


def test_each_step_has_its_topic_and_a_handler_and_nothing_else_is_handled():
    topics = {"approve.reserve_target": domain.RESERVE, "approve.hold_escrow": domain.HOLD,
              "approve.approve_target": domain.CONFIRM, "approve.release_target": domain.RELEASE,
              "approve.refund_escrow": domain.REFUND, "reject.reject_target": domain.REJECT}
    assert all(name == value for name, value in topics.items())
    assert set(DecisionSagas(None, None, None, RelayPolicy()).handlers()) == set(topics)


def test_the_only_conflict_that_ends_a_step_is_the_recorded_one():
    assert domain.RECORDED_CONFLICTS == {"target_being_approved"}


@pytest.mark.parametrize("code", [c for c in grpc.StatusCode if c not in DEFINITE and c != grpc.StatusCode.OK],
                         ids=lambda c: c.name)
def test_an_answer_that_may_hide_a_commit_is_repeated_not_compensated(code):
    assert not is_definite_refusal(code)


@pytest.mark.parametrize("code", sorted(DEFINITE, key=lambda c: c.name), ids=lambda c: c.name)
def test_a_business_refusal_ends_the_step(code):
    assert is_definite_refusal(code)


def _decision(status: str, advertiser_id: str | None, kind: str = "approve") -> domain.Decision:
    return domain.Decision("d", "t", kind, status, "m", reason="channel_not_approved",
                           reason_message="Channel must be approved", advertiser_id=advertiser_id)


def test_an_approve_refused_by_its_first_step_decided_nothing():
    assert domain.refused_at_start(_decision("failed", None))


@pytest.mark.parametrize("decision", [_decision("failed", "a"), _decision("approved", "a"),
                                      _decision("pending", None), _decision("failed", None, kind="reject")])
def test_an_approve_that_reserved_or_has_not_ended_was_not_refused_at_its_start(decision):
    assert not domain.refused_at_start(decision)


def test_a_recorded_refusal_carries_campaigns_code_and_message():
    from common.errors import PreconditionFailed
    refusal = domain.refusal("channel_not_approved", "Channel must be approved")
    assert isinstance(refusal, PreconditionFailed)
    assert (refusal.code, refusal.message) == ("channel_not_approved", "Channel must be approved")


def test_a_refusal_for_a_missing_target_is_not_found_and_one_while_approving_a_conflict():
    from common.errors import Conflict, NotFound
    assert isinstance(domain.refusal("not_found", "Target not found"), NotFound)
    assert isinstance(domain.refusal("target_being_approved", "Target is being approved"), Conflict)


@pytest.mark.parametrize("wait_ms", [-1, 30_001])
def test_approve_wait_outside_0_to_30s_is_invalid_input(wait_ms):
    from common.errors import InvalidInput
    with pytest.raises(InvalidInput):
        domain.check_wait(wait_ms)


@pytest.mark.parametrize("reason", ["", "   ", "x" * 1001])
def test_rejection_needs_a_reason_of_at_most_1000_characters(reason):
    from common.errors import InvalidInput
    with pytest.raises(InvalidInput):
        domain.valid_reason(reason)


def test_rejection_reason_is_trimmed():
    assert domain.valid_reason("  Off-topic ") == "Off-topic"


def test_only_an_admin_moderates():
    from common.errors import Forbidden
    for role in ("advertiser", "publisher", "system"):
        with pytest.raises(Forbidden):
            domain.require_moderator(role)
    domain.require_moderator("admin")
