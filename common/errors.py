"""The error vocabulary every layer speaks. Business modules raise these (or
subclasses with a more precise `code`); the gRPC and HTTP edges map them in
one table each. No business words here."""


class DomainError(Exception):
    """Base of every refusal a caller can cause. `code` is a stable snake_case
    machine reason; the message is for humans."""

    code = "error"

    def __init__(self, message: str, *, code: str | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class InvalidInput(DomainError):
    """The request itself is malformed: a bad id, a missing field, a value
    out of range."""

    code = "invalid_input"


class NotFound(DomainError):
    """No such resource, or one the caller may not know exists."""

    code = "not_found"


class Forbidden(DomainError):
    """The actor's role may not do this, or the actor is not the owner."""

    code = "forbidden"


class Unauthenticated(DomainError):
    """No credential, or a bad one."""

    code = "unauthenticated"


class PreconditionFailed(DomainError):
    """The request is well formed but the current state refuses it (wrong
    status, campaign not active, insufficient funds…)."""

    code = "precondition_failed"


class Conflict(DomainError):
    """A concurrent change won, or the resource is locked by a running
    process (a target being approved); retrying later may succeed."""

    code = "conflict"


class AlreadyExists(DomainError):
    """The key is taken by a different request (an idempotency key reused
    with another body, an escrow with other terms)."""

    code = "already_exists"


class Unavailable(DomainError):
    """A dependency cannot be reached right now."""

    code = "unavailable"
