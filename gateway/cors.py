"""Cross-origin access for the origins of GATEWAY_CORS_ORIGINS only (API.md
"Gateway limits"); none by default, and then no CORS header at all. A
request from another origin is served as if CORS did not exist: the
browser keeps the answer from its page. Tokens travel in Authorization, so
no origin is ever told it may send credentials, and none is a wildcard."""

ALLOWED_METHODS = b"GET, POST, PUT, PATCH, DELETE"
ALLOWED_HEADERS = b"Authorization, Content-Type, Idempotency-Key, X-Request-ID"
# What a page may read of an answer beyond the CORS-safelisted headers.
EXPOSED_HEADERS = b"X-Request-ID, Retry-After, Location, WWW-Authenticate"
PREFLIGHT_MAX_AGE_S = b"600"


class Cors:
    def __init__(self, app, origins: tuple[str, ...]):
        self.app, self.origins = app, frozenset(origin.encode() for origin in origins)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not self.origins:
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        origin = headers.get(b"origin")
        if origin not in self.origins:
            return await self.app(scope, receive, send)
        if scope["method"] == "OPTIONS" and b"access-control-request-method" in headers:
            return await _preflight(origin, send)

        async def send_with_cors(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*_vary_origin(message.get("headers", ())),
                                                  (b"access-control-allow-origin", origin),
                                                  (b"access-control-expose-headers", EXPOSED_HEADERS)]}
            await send(message)
        await self.app(scope, receive, send_with_cors)


async def _preflight(origin: bytes, send) -> None:
    await send({"type": "http.response.start", "status": 204, "headers": [
        (b"access-control-allow-origin", origin), (b"access-control-allow-methods", ALLOWED_METHODS),
        (b"access-control-allow-headers", ALLOWED_HEADERS), (b"access-control-max-age", PREFLIGHT_MAX_AGE_S),
        (b"vary", b"Origin")]})
    await send({"type": "http.response.body", "body": b""})


def _vary_origin(headers) -> list[tuple[bytes, bytes]]:
    """The answer differs by Origin: a shared cache must not serve one
    origin's answer to another."""
    out, varied = [], False
    for key, value in headers:
        if key.lower() == b"vary":
            value, varied = value + b", Origin", True
        out.append((key, value))
    return out if varied else [*out, (b"vary", b"Origin")]
