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
from starlette.exceptions import HTTPException as StarletteHTTPException

from common.grpc_errors import reason_of
from common.reasons import Reason

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

_SNAKE = re.compile(r"^[a-z][a-z0-9_]*$")


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
    return error_response(error.status_code, code, message, getattr(error, "headers", None))


def validation_message(errors) -> str:
    """A readable line from pydantic's errors: `where name: what`."""
    parts = []
    for item in list(errors)[:3]:
        if item.get("type") == "json_invalid":
            parts.append("request body is not valid JSON")
            continue
        loc = [str(p) for p in item.get("loc", ())]
        where, name = (loc[0], ".".join(loc[1:])) if loc else ("", "")
        if where == "body":
            label = name or "request body"
        else:
            label = f"{where} parameter {name}".strip()
        msg = str(item.get("msg", "is not valid")).removeprefix("Value error, ")
        parts.append(f"{label}: {msg}")
    return "; ".join(parts) or "request is not valid"


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(grpc.aio.AioRpcError, _rpc_error)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_exception)
