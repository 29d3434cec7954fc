"""Domain errors ↔ gRPC status, in one table. A machine reason travels as
google.rpc.ErrorInfo in a rich status, so callers branch on the reason,
never on message text."""
import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2

from common import errors

ERROR_DOMAIN = "adtech"
DETAILS_KEY = "grpc-status-details-bin"

STATUS_OF_ERROR: dict[type[errors.DomainError], grpc.StatusCode] = {
    errors.InvalidInput: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.Forbidden: grpc.StatusCode.PERMISSION_DENIED,
    errors.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    errors.PreconditionFailed: grpc.StatusCode.FAILED_PRECONDITION,
    errors.Conflict: grpc.StatusCode.ABORTED,
    errors.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
}
ERROR_OF_STATUS = {code: cls for cls, code in STATUS_OF_ERROR.items()}

# How a caller that may repeat a call (a relay delivering an idempotent
# step) reads a peer's answer. Only a business refusal is definite: the peer
# decided, and said no. Everything else (UNAVAILABLE, DEADLINE_EXCEEDED,
# ABORTED, but also INTERNAL, UNKNOWN, CANCELLED…) says nothing about whether
# the step committed, so it is repeated; the step answers a repeat from its
# record, which makes that safe. Running a compensation on INTERNAL could
# undo a step that did commit.
DEFINITE_REFUSALS = frozenset({
    grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.OUT_OF_RANGE,
    grpc.StatusCode.NOT_FOUND, grpc.StatusCode.ALREADY_EXISTS, grpc.StatusCode.PERMISSION_DENIED,
})


def is_definite_refusal(code: grpc.StatusCode) -> bool:
    return code in DEFINITE_REFUSALS


def status_code_for(error: errors.DomainError) -> grpc.StatusCode:
    for cls in type(error).__mro__:
        if cls in STATUS_OF_ERROR:
            return STATUS_OF_ERROR[cls]
    return grpc.StatusCode.INTERNAL


def rich_status_trailer(error: errors.DomainError, code: grpc.StatusCode) -> tuple[tuple[str, bytes], ...]:
    info = any_pb2.Any()
    info.Pack(error_details_pb2.ErrorInfo(reason=error.code, domain=ERROR_DOMAIN))
    status = status_pb2.Status(code=code.value[0], message=error.message, details=[info])
    return ((DETAILS_KEY, status.SerializeToString()),)


def reason_of(rpc_error: grpc.RpcError) -> str | None:
    """The ErrorInfo reason a service attached, or None."""
    trailers = rpc_error.trailing_metadata() if hasattr(rpc_error, "trailing_metadata") else None
    for key, value in trailers or ():
        if key == DETAILS_KEY:
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                info = error_details_pb2.ErrorInfo()
                if detail.Unpack(info):
                    return info.reason
    return None


def to_domain_error(rpc_error: grpc.RpcError) -> errors.DomainError | None:
    """Turns a peer's refusal back into our error type (same code), so a
    service can pass a peer's refusal on to its own caller unchanged. None
    for statuses that are not business refusals (INTERNAL, UNKNOWN…)."""
    code = rpc_error.code()
    cls = ERROR_OF_STATUS.get(code)
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        cls = errors.Unavailable
    if cls is None:
        return None
    error = cls(rpc_error.details() or code.name.lower())
    reason = reason_of(rpc_error)
    if reason:
        error.code = reason
    return error
