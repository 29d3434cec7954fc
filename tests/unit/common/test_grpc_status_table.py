"""common/grpc_errors.py's tables, whole: which gRPC status each refusal
class is answered with (and back), and which statuses a caller that may
repeat a step reads as a definite refusal. Every gRPC status is named here,
so adding a row, or a status to grpc, fails until this test is changed on
purpose."""
import grpc
import pytest
from grpc.aio import AioRpcError, Metadata

from common import errors
from common.grpc_errors import (DEFINITE_REFUSALS, ERROR_OF_STATUS, STATUS_OF_ERROR, is_definite_refusal,
                                rich_status_trailer, status_code_for, to_domain_error)
from common.reasons import Reason

S = grpc.StatusCode

STATUS_TABLE = {
    errors.InvalidInput: S.INVALID_ARGUMENT,
    errors.NotFound: S.NOT_FOUND,
    errors.Forbidden: S.PERMISSION_DENIED,
    errors.Unauthenticated: S.UNAUTHENTICATED,
    errors.PreconditionFailed: S.FAILED_PRECONDITION,
    errors.Conflict: S.ABORTED,
    errors.AlreadyExists: S.ALREADY_EXISTS,
    errors.Unavailable: S.UNAVAILABLE,
}

# Every status, definite refusal (True) or an answer that says nothing about
# whether the step committed (False).
DEFINITE_TABLE = {
    S.OK: False, S.CANCELLED: False, S.UNKNOWN: False, S.INVALID_ARGUMENT: True, S.DEADLINE_EXCEEDED: False,
    S.NOT_FOUND: True, S.ALREADY_EXISTS: True, S.PERMISSION_DENIED: True, S.RESOURCE_EXHAUSTED: False,
    S.FAILED_PRECONDITION: True, S.ABORTED: False, S.OUT_OF_RANGE: True, S.UNIMPLEMENTED: False,
    S.INTERNAL: False, S.UNAVAILABLE: False, S.DATA_LOSS: False, S.UNAUTHENTICATED: False,
}


def test_the_error_to_status_table_is_exactly_the_designed_one():
    assert STATUS_OF_ERROR == STATUS_TABLE


def test_the_status_to_error_table_is_its_exact_inverse():
    assert ERROR_OF_STATUS == {status: cls for cls, status in STATUS_TABLE.items()}


def test_every_grpc_status_is_classified():
    assert set(DEFINITE_TABLE) == set(S)


def test_the_definite_refusals_are_exactly_the_designed_ones():
    assert DEFINITE_REFUSALS == {status for status, definite in DEFINITE_TABLE.items() if definite}


@pytest.mark.parametrize("status", list(S), ids=lambda s: s.name)
def test_each_status_is_read_as_the_table_says(status):
    assert is_definite_refusal(status) is DEFINITE_TABLE[status]


class _NoClassOfItsOwn(errors.DomainError):
    """A refusal class the table does not name."""


class _MorePrecise(errors.PreconditionFailed):
    """A subclass with a more precise code."""

    code = Reason.INSUFFICIENT_FUNDS


@pytest.mark.parametrize("error, status", [
    *[(cls("x"), status) for cls, status in STATUS_TABLE.items()],
    (_MorePrecise("x"), S.FAILED_PRECONDITION),
    (_NoClassOfItsOwn("x"), S.INTERNAL),
], ids=lambda v: getattr(v, "name", type(v).__name__))
def test_a_refusal_is_answered_with_the_status_of_its_nearest_class_in_the_table(error, status):
    assert status_code_for(error) == status


def _rpc_error(status: grpc.StatusCode, reason: str | None = None) -> AioRpcError:
    trailers = Metadata(*rich_status_trailer(errors.DomainError("x", code=reason), status)) if reason else Metadata()
    return AioRpcError(status, Metadata(), trailers, "peer says no")


@pytest.mark.parametrize("status", list(S), ids=lambda s: s.name)
def test_a_peers_answer_becomes_the_error_of_its_status_or_none(status):
    translated = to_domain_error(_rpc_error(status))
    expected = errors.Unavailable if status == S.DEADLINE_EXCEEDED else ERROR_OF_STATUS.get(status)
    if expected is None:
        assert translated is None
    else:
        assert type(translated) is expected and translated.message == "peer says no"


def test_a_peers_reason_travels_with_its_refusal():
    translated = to_domain_error(_rpc_error(S.FAILED_PRECONDITION, Reason.INSUFFICIENT_FUNDS))
    assert (type(translated), translated.code) == (errors.PreconditionFailed, Reason.INSUFFICIENT_FUNDS)
