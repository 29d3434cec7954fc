"""The outermost layer of every request: its id (X-Request-ID in and out,
set into the log context and forwarded to services), one log line, the
headers every answer carries (`X-Content-Type-Options: nosniff`; a
`Location` made relative), and the last-resort 500 for anything
unexpected: logged once, answered without details."""
import json
import logging
import re
import time
import urllib.parse
import uuid

from common.logs import request_id_var
from common.reasons import Reason
from gateway.errors import error_body

log = logging.getLogger("gateway.access")
_HEADER = b"x-request-id"
_ACCEPTABLE_ID = re.compile(rb"^[A-Za-z0-9._:\-]{1,128}$")
_INTERNAL = json.dumps(error_body(Reason.INTERNAL, "internal error")).encode()
_NOSNIFF = (b"x-content-type-options", b"nosniff")
_LOCATION = b"location"


class RequestContext:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        request_id = _incoming_id(scope) or uuid.uuid4().hex
        request_id_var.set(request_id)
        header = (_HEADER, request_id.encode())
        started, status = time.perf_counter(), 500
        response_started = False

        async def send_with_id(message):
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started, status = True, message["status"]
                message = {**message, "headers": [*answer_headers(message.get("headers", ())), header]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception("unexpected error", extra={"fields": {"method": scope["method"], "path": scope["path"]}})
            if not response_started:
                status = 500
                await send({"type": "http.response.start", "status": 500, "headers": [
                    (b"content-type", b"application/json"), (b"content-length", str(len(_INTERNAL)).encode()),
                    _NOSNIFF, header]})
                await send({"type": "http.response.body", "body": _INTERNAL})
        finally:
            log.info("request", extra={"fields": {
                "method": scope["method"], "path": scope["path"], "status": status,
                "duration_ms": round((time.perf_counter() - started) * 1000, 2)}})


def _incoming_id(scope) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == _HEADER:
            return value.decode() if _ACCEPTABLE_ID.match(value) else None
    return None


def answer_headers(headers) -> list[tuple[bytes, bytes]]:
    """`headers` with nosniff added once, and a Location reduced to its path
    and query: Starlette builds redirects (a trailing slash, a directory)
    from the request's Host, so `Host: evil.example` would send a browser
    there. The gateway never redirects to another site."""
    out, sniffing = [], True
    for key, value in headers:
        name = key.lower()
        if name == _LOCATION:
            value = relative_location(value)
        elif name == _NOSNIFF[0]:
            sniffing = False
        out.append((key, value))
    if sniffing:
        out.append(_NOSNIFF)
    return out


def relative_location(location: bytes) -> bytes:
    """The path and query of a redirect target, with one leading slash
    (`//host/...` would name another host again)."""
    parts = urllib.parse.urlsplit(location.decode("latin-1"))
    path = "/" + parts.path.lstrip("/\\")
    return (path + (f"?{parts.query}" if parts.query else "")).encode("latin-1")
