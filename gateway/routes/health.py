"""Liveness, and readiness as each service's standard gRPC health says."""
import asyncio
from typing import Annotated

import grpc
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials
from grpc_health.v1 import health_pb2
from pydantic import BaseModel

from adtech.ops.v1 import ops_pb2
from common.reasons import Reason
from gateway.deps import AllServices, bearer, current_user
from gateway.errors import ApiError

router = APIRouter(prefix="/api/health", tags=["health"])

# Readiness must answer fast even when a service hangs.
PROBE_DEADLINE_S = 1.0


class Live(BaseModel):
    status: str


class Ready(BaseModel):
    status: str
    services: dict[str, str]
    outbox: dict[str, dict] | None = None


@router.get("/live", response_model=Live)
async def live() -> Live:
    """The gateway process is up."""
    return Live(status="ok")


# security [{}] joins the bearer requirement FastAPI documents: the token is
# optional here (needed with ?details=true only).
@router.get("/ready", response_model=Ready, responses={503: {"model": Ready, "description": "A service is not serving"}},
            openapi_extra={"security": [{}]})
async def ready(services: AllServices, request: Request, details: bool = False,
                credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)] = None,
                ) -> JSONResponse:
    """Asks each service's gRPC health. 503 names the one not SERVING
    (NOT_SERVING, UNREACHABLE or UNKNOWN). With `?details=true` the body
    adds `outbox`: each outbox's backlog (pending, dead letters, age of the
    oldest pending message, attempts); it informs, it does not decide
    readiness, and needs an admin token. Without it the body is exactly
    API.md's and no token is needed."""
    if details:
        user = await current_user(request, credentials)  # 401 without a valid token
        if user.role != "admin":
            raise ApiError(403, Reason.FORBIDDEN, "readiness details are for admins")
    names = list(services.health)
    states = await asyncio.gather(*(_probe(services.health[name]) for name in names))
    report = dict(zip(names, states))
    serving = all(state == "SERVING" for state in states)
    body = {"status": "ok" if serving else "unavailable", "services": report}
    if details:
        outboxes = {name: stub for name, stub in services.outboxes.items() if report.get(name) == "SERVING"}
        backlogs = await asyncio.gather(*(_backlog(stub) for stub in outboxes.values()))
        body["outbox"] = {name: backlog for name, backlog in zip(outboxes, backlogs) if backlog is not None}
    return JSONResponse(body, status_code=200 if serving else 503)


async def _backlog(stub) -> dict | None:
    try:
        stats = await stub.GetOutboxStats(ops_pb2.GetOutboxStatsRequest(), timeout=PROBE_DEADLINE_S)
    except grpc.aio.AioRpcError:
        return None
    return {"pending": stats.pending, "dead": stats.dead, "maxAttempts": stats.max_attempts,
            "oldestPendingAgeSeconds": round(stats.oldest_pending_age_seconds, 3)}


async def _probe(stub) -> str:
    try:
        reply = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=PROBE_DEADLINE_S)
    except grpc.aio.AioRpcError as error:
        return "UNREACHABLE" if error.code() in {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED} \
            else error.code().name
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
