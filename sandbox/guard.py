"""Who may use the control API and the page. The control API (everything
under /sandbox/) needs the control token as a bearer token and a loopback
Host header (a page elsewhere cannot reach it through a name that resolves
to this machine: DNS rebinding), and its bodies are JSON only (a form
cannot be posted to it from a browser). The page needs a loopback Host; its
delete forms carry a token (an HMAC of a secret drawn at start) that only
the page knows. Nothing is changed by a refused call."""
import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
Handler = Callable[[Request], Awaitable[Response]]


def host_name(request: Request) -> str:
    """The Host header's name without its port: `[::1]:8081` is `::1`."""
    host = request.headers.get("host", "").strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else ""
    return host.rsplit(":", 1)[0] if ":" in host else host


def refused(status: int, message: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers or None)


class Guard:
    def __init__(self, control_token: str):
        self._control_token = control_token.encode()
        self._page_secret = secrets.token_bytes(32)  # per process: a restart outdates the page's forms

    def form_token(self, action: str) -> str:
        """The token of the page's form that posts to `action`."""
        return hmac.new(self._page_secret, action.encode(), hashlib.sha256).hexdigest()

    def form_token_ok(self, action: str, given: str) -> bool:
        return hmac.compare_digest(self.form_token(action).encode(), given.encode())

    async def control_refusal(self, request: Request) -> Response | None:
        if host_name(request) not in LOOPBACK_HOSTS:
            return refused(403, "the control API answers only to a loopback Host (127.0.0.1, localhost, [::1])")
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), self._control_token):
            return refused(401, "the control API needs Authorization: Bearer <TELEGRAM_SANDBOX_CONTROL_TOKEN>",
                           **{"WWW-Authenticate": "Bearer"})
        if request.method in ("POST", "PUT", "PATCH"):
            kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if (kind and kind != "application/json") or (not kind and await request.body()):
                return refused(415, "control bodies are JSON: Content-Type: application/json")
        return None

    def control(self, handler: Handler) -> Handler:
        """`handler` behind the control API's checks."""
        async def guarded(request: Request) -> Response:
            return await self.control_refusal(request) or await handler(request)
        return guarded

    def page(self, handler: Handler) -> Handler:
        """`handler` served only to a loopback Host."""
        async def guarded(request: Request) -> Response:
            if host_name(request) not in LOOPBACK_HOSTS:
                return refused(403, "the page answers only to a loopback Host (127.0.0.1, localhost, [::1])")
            return await handler(request)
        return guarded
