"""Who is calling. Only the gateway sees user tokens; between services a call
carries the internal credential and the acting user in metadata."""
import contextvars
import dataclasses
import hmac
import uuid

from common.errors import Forbidden, InvalidInput

TOKEN_KEY = "x-internal-token"
ACTOR_ID_KEY = "x-actor-id"
ACTOR_ROLE_KEY = "x-actor-role"
REQUEST_ID_KEY = "x-request-id"

ROLES = frozenset({"advertiser", "publisher", "admin", "system"})
USER_ROLES = frozenset({"advertiser", "publisher", "admin"})
SYSTEM_ID = "00000000-0000-0000-0000-000000000000"

# gRPC methods that answer anyone, without the internal credential or an
# acting user: health and reflection (load balancers, readiness, grpcurl).
OPEN_METHOD_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")


@dataclasses.dataclass(frozen=True)
class Actor:
    id: str
    role: str

    def require(self, *roles: str) -> None:
        if self.role not in roles:
            raise Forbidden(f"role {self.role} may not do this")


SYSTEM = Actor(SYSTEM_ID, "system")
current_actor: contextvars.ContextVar[Actor | None] = contextvars.ContextVar("current_actor", default=None)


def tokens_match(presented: str | None, expected: str) -> bool:
    return presented is not None and hmac.compare_digest(presented.encode(), expected.encode())


def actor_from_metadata(metadata: dict[str, str]) -> Actor | None:
    actor_id, role = metadata.get(ACTOR_ID_KEY), metadata.get(ACTOR_ROLE_KEY)
    if not actor_id or role not in ROLES:
        return None
    try:
        uuid.UUID(actor_id)
    except ValueError:
        return None
    return Actor(actor_id, role)


def parse_uuid(value: str, field: str) -> str:
    """The canonical form of a UUID, or InvalidInput naming the field."""
    try:
        return str(uuid.UUID(value))
    except (ValueError, AttributeError, TypeError):
        raise InvalidInput(f"{field} must be a UUID") from None


class acting_as:
    """Within the block, outgoing calls carry `actor` (e.g. SYSTEM in a relay)."""

    def __init__(self, actor: Actor):
        self.actor = actor

    def __enter__(self):
        self._token = current_actor.set(self.actor)
        return self.actor

    def __exit__(self, *exc):
        current_actor.reset(self._token)


def require_actor() -> Actor:
    """The acting user of the current call (set by the server interceptor)."""
    actor = current_actor.get()
    if actor is None:
        raise Forbidden("no acting user")
    return actor
