"""What the gateway refuses before anything reads a request (API.md
"Gateway limits"): a body over GATEWAY_MAX_BODY_BYTES is 413 before any
parsing or auth, whether it declares its length or streams it, and a JSON
body nested deeper than MAX_JSON_DEPTH is 400. The body is read here, at
most the limit of it, and handed on whole: nothing behind holds more."""
import json
import re

from common.reasons import Reason
from gateway.errors import error_body

PAYLOAD_TOO_LARGE = "payload_too_large"
# No request of the API nests deeper than 4; a parser walking 100k levels
# is a client's CPU bought with ours.
MAX_JSON_DEPTH = 32
METHODS_WITH_BODY = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_A_BRACKET = re.compile(rb"[^\[\]{}]")
_GONE = object()
_DEPTH_STEP = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")


class RequestLimits:
    def __init__(self, app, max_body_bytes: int):
        self.app, self.max_body_bytes = app, max_body_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length, streamed = _declared_body(scope)
        if length is None and not streamed:
            return await self.app(scope, receive, send)
        if length is not None and length > self.max_body_bytes:
            return await self._too_large(send)
        body = await _read_at_most(receive, self.max_body_bytes)
        if body is _GONE:
            return  # nobody to answer
        if body is None:
            return await self._too_large(send)
        if body and scope["method"] in METHODS_WITH_BODY and too_deep(body, MAX_JSON_DEPTH):
            return await _answer(send, 400, Reason.INVALID_INPUT, f"request body nests deeper than {MAX_JSON_DEPTH}")
        await self.app(scope, _replaying(body, receive), send)

    async def _too_large(self, send):
        # Connection: close: the rest of the body is never read, so the
        # connection cannot carry another request.
        await _answer(send, 413, PAYLOAD_TOO_LARGE, f"request body exceeds {self.max_body_bytes} bytes",
                      close=True)


def _declared_body(scope) -> tuple[int | None, bool]:
    """(Content-Length, whether the body is chunked). The HTTP parser has
    refused a malformed length already."""
    length, streamed = None, False
    for key, value in scope["headers"]:
        if key == b"content-length":
            try:
                length = int(value)
            except ValueError:  # the parser let it by: count what comes instead
                streamed = True
        elif key == b"transfer-encoding":
            streamed = True
    return (None if streamed else length), streamed


async def _read_at_most(receive, limit: int):
    """The whole body, None as soon as it passes `limit`, or _GONE when the
    client left (or was dropped for its silence) before sending it all."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return _GONE
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replaying(body: bytes, receive):
    sent = False

    async def replay():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()
    return replay


def too_deep(body: bytes, limit: int) -> bool:
    """Whether the JSON text nests arrays and objects deeper than `limit`
    (brackets inside strings do not count). Not JSON at all is the
    parser's to refuse."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    brackets = _NOT_A_BRACKET.sub(b"", _STRING.sub(b"", body)).translate(_DEPTH_STEP)
    depth = 0
    for step in brackets:
        depth += 1 if step == 1 else -1
        if depth > limit:
            return True
    return False


async def _answer(send, status: int, code: str, message: str, close: bool = False) -> None:
    content = json.dumps(error_body(code, message)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(content)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": content})
