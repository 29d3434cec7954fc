"""Request dependencies: the user behind the bearer token, role gates, and
the long-lived service stubs. The acting user is put into
`common.auth.current_actor` so the channel (`common.clients.CallerChannel`) forwards it."""
import dataclasses
import functools
import time
import uuid
from typing import Annotated

import jwt
from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from grpc_health.v1 import health_pb2_grpc

from adtech.campaigns.v1 import campaigns_pb2_grpc
from adtech.moderation.v1 import moderation_pb2_grpc
from adtech.ops.v1 import ops_pb2_grpc
from adtech.payments.v1 import payments_pb2_grpc
from common.auth import SYSTEM_ID, USER_ROLES, Actor, current_actor
from common.clients import CallerChannel
from common.pagination import DEFAULT_LIMIT, MAX_LIMIT
from common.reasons import Reason
from gateway.errors import ApiError

ALGORITHM = "HS256"
# How far ahead a token's exp may lie unless configured (ADTECH_JWT_MAX_TTL_S).
MAX_TTL_S = 86_400
# The security scheme of every route that takes a token.
bearer = HTTPBearer(auto_error=False, scheme_name="bearer", bearerFormat="JWT",
                    description="A JWT (HS256) with claims sub (the user's UUID), role (advertiser, publisher, "
                                "admin) and exp")


def unauthorized(message: str) -> ApiError:
    return ApiError(401, Reason.UNAUTHENTICATED, message, {"WWW-Authenticate": "Bearer"})


def actor_from_token(token: str, secret: str, max_ttl_s: int = MAX_TTL_S) -> Actor:
    """The user a token names, or a 401: HS256 only; sub a UUID (never the
    system's), role a user role, and exp an integer at most `max_ttl_s` ahead
    (a token that never expires is a stolen token that never expires), all
    required. A token verified once is not verified again (a client sends the
    same token with every request) until it expires; its exp only comes
    closer, so the bound checked at first sight holds for every later use."""
    actor, expires_at = _verified(token, secret, max_ttl_s)
    if time.time() >= expires_at:
        raise unauthorized("token has expired")
    return actor


@functools.lru_cache(maxsize=4096)
def _verified(token: str, secret: str, max_ttl_s: int) -> tuple[Actor, float]:
    """(actor, exp) of a token whose signature and claims are good; a bad
    token raises (and nothing is remembered of it)."""
    try:
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM], options={"require": ["exp", "sub", "role"]})
    except jwt.ExpiredSignatureError:
        raise unauthorized("token has expired") from None
    except jwt.InvalidTokenError:
        raise unauthorized("token is not valid") from None
    sub, role, exp = claims["sub"], claims["role"], claims["exp"]
    # PyJWT takes anything int() takes: "123" and 1e308 among them.
    if type(exp) is not int:
        raise unauthorized("token exp is not an integer")
    if exp > time.time() + max_ttl_s:
        raise unauthorized(f"token exp is more than {max_ttl_s} s ahead")
    try:
        user_id = str(uuid.UUID(sub))
    except (ValueError, TypeError, AttributeError):
        raise unauthorized("token subject is not a UUID") from None
    if user_id == SYSTEM_ID:
        # The system acts for itself inside the platform; a user token naming
        # it would write audit rows in its name.
        raise unauthorized("token subject is reserved")
    if not isinstance(role, str) or role not in USER_ROLES:
        raise unauthorized("token role is not one of advertiser, publisher, admin")
    return Actor(user_id, role), float(exp)


async def current_user(request: Request,
                       credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Actor:
    if credentials is None:
        raise unauthorized("a bearer token is required")
    actor = actor_from_token(credentials.credentials, request.app.state.jwt_secret,
                             request.app.state.settings.adtech_jwt_max_ttl_s)
    # Async dependencies run in the endpoint's context, so the stub calls see it.
    current_actor.set(actor)
    return actor


CurrentUser = Annotated[Actor, Depends(current_user)]


def require_role(*roles: str):
    """A dependency admitting only these roles (403 for the others)."""
    async def gate(user: CurrentUser) -> Actor:
        if user.role not in roles:
            raise ApiError(403, Reason.FORBIDDEN, f"role {user.role} may not do this")
        return user
    return Depends(gate)


Admin = Annotated[Actor, require_role("admin")]
Advertiser = Annotated[Actor, require_role("advertiser")]
Publisher = Annotated[Actor, require_role("publisher")]
AdvertiserOrAdmin = Annotated[Actor, require_role("advertiser", "admin")]


@dataclasses.dataclass(frozen=True)
class PageParams:
    limit: int
    cursor: str


async def page_params(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Page size")] = DEFAULT_LIMIT,
    cursor: Annotated[str, Query(max_length=2000, description="nextCursor of the previous page")] = "",
) -> PageParams:
    return PageParams(limit, cursor)


Page = Annotated[PageParams, Depends(page_params)]


@dataclasses.dataclass
class Services:
    """One long-lived channel per service and the stubs over it."""
    channels: dict[str, CallerChannel]

    def __post_init__(self):
        self.campaigns = campaigns_pb2_grpc.CampaignsServiceStub(self.channels["campaigns"])
        self.moderation = moderation_pb2_grpc.ModerationServiceStub(self.channels["moderation"])
        self.payments = payments_pb2_grpc.PaymentsServiceStub(self.channels["payments"])
        self.health = {name: health_pb2_grpc.HealthStub(channel) for name, channel in self.channels.items()}
        self.outboxes = {name: ops_pb2_grpc.OpsServiceStub(self.channels[name]) for name in ("campaigns", "moderation")}


async def _services(request: Request) -> Services:
    return request.app.state.services


async def _campaigns(request: Request) -> campaigns_pb2_grpc.CampaignsServiceStub:
    return request.app.state.services.campaigns


async def _moderation(request: Request) -> moderation_pb2_grpc.ModerationServiceStub:
    return request.app.state.services.moderation


async def _payments(request: Request) -> payments_pb2_grpc.PaymentsServiceStub:
    return request.app.state.services.payments


AllServices = Annotated[Services, Depends(_services)]
CampaignsApi = Annotated[campaigns_pb2_grpc.CampaignsServiceStub, Depends(_campaigns)]
ModerationApi = Annotated[moderation_pb2_grpc.ModerationServiceStub, Depends(_moderation)]
PaymentsApi = Annotated[payments_pb2_grpc.PaymentsServiceStub, Depends(_payments)]
