"""HTTP errors: ONE table from gRPC status (and ErrorInfo reason) to HTTP
status, and the handlers that give every error the body
`{"error": {"code", "message"}}` of API.md."""
import dataclasses
import logging
import re

import grpc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from common.grpc_errors import reason_of
from common.reasons import Reason
from gateway.inputs import PATTERN_MEANINGS

log = logging.getLogger(__name__)
S = grpc.StatusCode

# (status, reason) first, then (status, None). API.md "Errors".
HTTP_STATUS_OF: dict[tuple[grpc.StatusCode, str | None], int] = {
    (S.FAILED_PRECONDITION, Reason.INSUFFICIENT_FUNDS): 402,
    (S.INVALID_ARGUMENT, None): 400,
    (S.FAILED_PRECONDITION, None): 400,
    (S.OUT_OF_RANGE, None): 400,
    (S.RESOURCE_EXHAUSTED, None): 400,  # e.g. a request larger than a service accepts
    (S.UNAUTHENTICATED, None): 401,
    (S.PERMISSION_DENIED, None): 403,
    (S.NOT_FOUND, None): 404,
    (S.ABORTED, None): 409,
    (S.ALREADY_EXISTS, None): 409,
    (S.UNIMPLEMENTED, None): 501,
    (S.UNAVAILABLE, None): 503,
    (S.DEADLINE_EXCEEDED, None): 503,
    (S.CANCELLED, None): 503,
    (S.INTERNAL, None): 500,
    (S.UNKNOWN, None): 500,
    (S.DATA_LOSS, None): 500,
}

# Server-side failures answer a fixed text: details may name hosts or stack frames.
GENERIC_MESSAGES = {
    500: "internal error",
    501: "not implemented",
    503: "a service behind the gateway is unavailable; try again",
}

SNAKE_CASE = r"^[a-z][a-z0-9_]*$"
_SNAKE = re.compile(SNAKE_CASE)
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
JSON_OBJECT_EXPECTED = "request body must be a JSON object, sent with Content-Type: application/json"


@dataclasses.dataclass(frozen=True)
class HttpError:
    status: int
    code: str
    message: str


class ApiError(Exception):
    """A refusal decided at the gateway (auth, role, a settled approve that failed)."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


def http_error_for(status: grpc.StatusCode, reason: str | None, details: str | None) -> HttpError:
    """The HTTP answer for a gRPC outcome: the ErrorInfo reason is the code
    when present, else the status name in snake_case."""
    http = HTTP_STATUS_OF.get((status, reason)) or HTTP_STATUS_OF.get((status, None), 500)
    code = reason if reason and _SNAKE.match(reason) else status.name.lower()
    message = GENERIC_MESSAGES.get(http) or details or code.replace("_", " ")
    return HttpError(http, code, message)


class ErrorDetail(BaseModel):
    """The shape error_body() builds, as the OpenAPI document states it."""
    model_config = ConfigDict(extra="forbid")
    code: str = Field(pattern=SNAKE_CASE, description="Machine reason, snake_case: branch on it")
    message: str = Field(min_length=1, description="For people: it may change")


class ErrorBody(BaseModel):
    """Every error the gateway answers has this body (API.md "Errors")."""
    model_config = ConfigDict(extra="forbid")
    error: ErrorDetail


def error_body(code: str, message: str) -> dict:
    return {"error": {"code": code, "message": message}}


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(code, message), status_code=status, headers=headers)


async def _rpc_error(request: Request, error: grpc.aio.AioRpcError) -> JSONResponse:
    mapped = http_error_for(error.code(), reason_of(error), error.details())
    if mapped.status >= 500 or mapped.status == 401:
        # 401 from a service means OUR internal credential was refused.
        log.warning("service call failed", extra={"fields": {
            "path": request.url.path, "grpc_status": error.code().name, "details": error.details()}})
    return error_response(mapped.status, mapped.code, mapped.message)


async def _api_error(request: Request, error: ApiError) -> JSONResponse:
    return error_response(error.status, error.code, error.message, error.headers)


async def _validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
    return error_response(400, Reason.INVALID_INPUT, validation_message(error.errors()))


async def _http_exception(request: Request, error: StarletteHTTPException) -> JSONResponse:
    codes = {400: (Reason.INVALID_INPUT, str(error.detail)), 404: (Reason.NOT_FOUND, "no such route"),
             405: (Reason.METHOD_NOT_ALLOWED, "method not allowed on this route")}
    code, message = codes.get(error.status_code, (Reason.HTTP_ERROR, str(error.detail)))
    headers = getattr(error, "headers", None)
    if error.status_code == 405:
        headers = {**(headers or {}), "Allow": ", ".join(_allowed_methods(request))}
    return error_response(error.status_code, code, message, headers)


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path (the router names only
    the first route it met there)."""
    return [method for method in HTTP_METHODS if any(
        route.matches({**request.scope, "method": method})[0] is Match.FULL for route in request.app.router.routes)]


def validation_message(errors) -> str:
    """A readable line from pydantic's errors: `where name: what`."""
    parts = []
    for item in list(errors)[:3]:
        kind, loc = item.get("type"), [str(p) for p in item.get("loc", ())]
        if kind == "json_invalid":
            parts.append("request body is not valid JSON")
            continue
        msg = str(item.get("msg", "is not valid")).removeprefix("Value error, ")
        if loc == ["body"]:
            # A rule of the whole body (at least one field to change) says
            # what it wants; else it is not an object: not JSON, or another
            # JSON value, or none at all.
            parts.append(msg if kind == "value_error" else JSON_OBJECT_EXPECTED)
            continue
        where, name = (loc[0], ".".join(loc[1:])) if loc else ("", "")
        if where == "body":
            label = name
        else:
            label = f"{where} parameter {name}".strip()
        if kind == "string_pattern_mismatch":
            msg = PATTERN_MEANINGS.get(item.get("ctx", {}).get("pattern"), msg)
        parts.append(f"{label}: {msg}")
    return "; ".join(parts) or "request is not valid"


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(grpc.aio.AioRpcError, _rpc_error)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_exception)
