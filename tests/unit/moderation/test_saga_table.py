"""The approve saga's lifecycle table."""
import itertools

import grpc
import pytest

from common.grpc_errors import is_definite_refusal

from common.errors import PreconditionFailed
from services.moderation import domain

STATES = ["pending", "reserved", "escrow_held", "approved", "compensating", "failed"]
ALLOWED = {("pending", "reserved"), ("pending", "failed"), ("reserved", "escrow_held"), ("reserved", "failed"),
           ("escrow_held", "approved"), ("escrow_held", "compensating"), ("compensating", "failed")}


@pytest.mark.parametrize("current,wanted", sorted(ALLOWED))
def test_saga_moves_forward_or_into_its_compensation(current, wanted):
    domain.assert_saga_move(current, wanted)


@pytest.mark.parametrize("current,wanted", [m for m in itertools.product(STATES, STATES) if m not in ALLOWED])
def test_every_other_saga_move_is_refused(current, wanted):
    with pytest.raises(PreconditionFailed):
        domain.assert_saga_move(current, wanted)


def test_a_held_escrow_is_never_abandoned_by_a_direct_failure():
    assert ("escrow_held", "failed") not in domain.SAGA_MOVES


def test_settled_and_live_states_partition_the_approve_states():
    assert set(domain.LIVE).isdisjoint(domain.SETTLED)
    assert set(STATES) <= set(domain.LIVE) | domain.SETTLED


@pytest.mark.parametrize("code", [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.ABORTED,
                                  grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.CANCELLED,
                                  grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.RESOURCE_EXHAUSTED])
def test_an_answer_that_may_hide_a_commit_is_repeated_not_compensated(code):
    assert not is_definite_refusal(code)


@pytest.mark.parametrize("code", [grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.NOT_FOUND,
                                  grpc.StatusCode.ALREADY_EXISTS, grpc.StatusCode.PERMISSION_DENIED])
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
