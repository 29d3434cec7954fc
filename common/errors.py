"""The error vocabulary every layer speaks. Business modules raise these (or
subclasses with a more precise `code`); the gRPC and HTTP edges map them in
one table each. No business words here."""
from common.reasons import Reason


class DomainError(Exception):
    """Base of every refusal a caller can cause. `code` is a machine reason
    (a `Reason`, or a peer's reason passed on); the message is for humans.
    A refusal of no class of its own is answered as INTERNAL."""

    code: str = Reason.INTERNAL

    def __init__(self, message: str, *, code: str | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class InvalidInput(DomainError):
    """The request itself is malformed: a bad id, a missing field, a value
    out of range."""

    code = Reason.INVALID_INPUT


class NotFound(DomainError):
    """No such resource, or one the caller may not know exists."""

    code = Reason.NOT_FOUND


class Forbidden(DomainError):
    """The actor's role may not do this, or the actor is not the owner."""

    code = Reason.FORBIDDEN


class Unauthenticated(DomainError):
    """No credential, or a bad one."""

    code = Reason.UNAUTHENTICATED


class PreconditionFailed(DomainError):
    """The request is well formed but the current state refuses it (wrong
    status, campaign not active, insufficient funds…)."""

    code = Reason.PRECONDITION_FAILED


class Conflict(DomainError):
    """A concurrent change won, or the resource is locked by a running
    process (a target being approved); retrying later may succeed."""

    code = Reason.CONFLICT


class AlreadyExists(DomainError):
    """The key is taken by a different request (an idempotency key reused
    with another body, an escrow with other terms)."""

    code = Reason.ALREADY_EXISTS


class Unavailable(DomainError):
    """A dependency cannot be reached right now."""

    code = Reason.UNAVAILABLE
