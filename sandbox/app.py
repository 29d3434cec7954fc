"""The sandbox's HTTP app: the Bot API at /bot<token>/<method>, the control
API under /sandbox/ and the page at / (routes in sandbox/__init__.py)."""
import hmac
import json
import logging
import re
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from sandbox import page
from sandbox.botapi import FAULT_KINDS, BotApi, Fault
from sandbox.store import REFUSALS, Store

log = logging.getLogger(__name__)

HANDLE = re.compile(r"@?([A-Za-z0-9_]{3,64})")
UNAUTHORIZED = {"ok": False, "error_code": 401, "description": "Unauthorized"}


class ControlError(Exception):
    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.message, self.status = message, status


def create_app(store: Store, token: str) -> Starlette:
    api = BotApi(store, token)

    async def bot_method(request: Request) -> Response:
        # The token is in the path: never logged (the access log is off).
        if not hmac.compare_digest(request.path_params["token"].encode(), token.encode()):
            return JSONResponse(UNAUTHORIZED, status_code=401)
        method = request.path_params["method"]
        try:
            params = await _params(request)
        except ValueError as error:
            return JSONResponse({"ok": False, "error_code": 400, "description": f"Bad Request: {error}"}, 400)
        status, body = await api.call(method, params)
        log.debug("%s -> %s", method, status)
        if isinstance(body, str):
            return HTMLResponse(body, status_code=status)
        return JSONResponse(body, status_code=status)

    async def index(request: Request) -> Response:
        return HTMLResponse(page.render(store))

    async def channels(request: Request) -> Response:
        return JSONResponse([_channel_json(store, channel) for channel in store.channels()])

    async def channel(request: Request) -> Response:
        return JSONResponse(_channel_json(store, store.channel(_handle(request))))

    async def posts(request: Request) -> Response:
        found = store.channel(_handle(request))
        return JSONResponse([post.as_json() for post in store.posts(found.chat_id)])

    async def delete_post(request: Request) -> Response:
        found = store.channel(_handle(request))
        deleted = store.delete_post(found.chat_id, _message_id(request))
        if request.url.path.endswith("/delete"):  # the page's form: back to the page
            return RedirectResponse("/", status_code=303)
        if not deleted:
            raise ControlError("no live post with that message id", 404)
        return JSONResponse({"deleted": True})

    async def refuse(request: Request) -> Response:
        body = await _json(request)
        mode = body.get("mode")
        if mode not in (*REFUSALS, "off"):
            raise ControlError(f"mode must be one of {', '.join((*REFUSALS, 'off'))}")
        changed = store.set_refuse(_handle(request), None if mode == "off" else mode)
        return JSONResponse(_channel_json(store, changed))

    async def faults(request: Request) -> Response:
        if request.method == "DELETE":
            api.faults.clear()
        elif request.method == "POST":
            api.faults.arm(*_fault(await _json(request)))
        return JSONResponse(api.faults.as_json())

    async def reset(request: Request) -> Response:
        store.reset()
        api.faults.clear()
        return JSONResponse({"reset": True})

    async def control_error(request: Request, error: ControlError) -> Response:
        return JSONResponse({"error": error.message}, status_code=error.status)

    routes = [
        Route("/", index, methods=["GET"]),
        Route("/bot{token}/{method}", bot_method, methods=["GET", "POST"]),
        Route("/sandbox/channels", channels, methods=["GET"]),
        Route("/sandbox/channels/{handle}", channel, methods=["GET"]),
        Route("/sandbox/channels/{handle}/posts", posts, methods=["GET"]),
        Route("/sandbox/channels/{handle}/posts/{message_id}", delete_post, methods=["DELETE"]),
        Route("/sandbox/channels/{handle}/posts/{message_id}/delete", delete_post, methods=["POST"]),
        Route("/sandbox/channels/{handle}/refuse", refuse, methods=["POST"]),
        Route("/sandbox/faults", faults, methods=["GET", "POST", "DELETE"]),
        Route("/sandbox/reset", reset, methods=["POST"]),
    ]
    return Starlette(routes=routes, exception_handlers={ControlError: control_error})


def _channel_json(store: Store, channel) -> dict:
    return {"handle": f"@{channel.title}", "chat_id": channel.chat_id, "refuse": channel.refuse,
            "posts": [post.as_json() for post in store.posts(channel.chat_id)]}


def _handle(request: Request) -> str:
    match = HANDLE.fullmatch(request.path_params["handle"])
    if not match:
        raise ControlError("a handle is @name: 3-64 letters, digits or _")
    return match.group(1)


def _message_id(request: Request) -> int:
    try:
        return int(request.path_params["message_id"])
    except ValueError:
        raise ControlError("message_id is a number") from None


async def _json(request: Request) -> dict:
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError:
        raise ControlError("the body is not JSON") from None
    if not isinstance(body, dict):
        raise ControlError("the body is a JSON object")
    return body


def _fault(body: dict) -> tuple[str, Fault]:
    method, kind = body.get("method"), str(body.get("kind"))
    if not isinstance(method, str) or not method:
        raise ControlError("method names a Bot API method (or * for any)")
    if kind not in FAULT_KINDS:
        raise ControlError(f"kind must be one of {', '.join(FAULT_KINDS)}")
    try:
        fault = Fault(kind=kind, count=int(body.get("count", 1)), retry_after=int(body.get("retry_after", 5)),
                      stall_s=float(body.get("stall_s", 30.0)))
    except (TypeError, ValueError):
        raise ControlError("count and retry_after are integers, stall_s a number") from None
    if fault.count < 1 or fault.retry_after < 1 or fault.stall_s < 0:
        raise ControlError("count and retry_after are at least 1, stall_s at least 0")
    return method, fault


async def _params(request: Request) -> dict:
    """A Bot API call's parameters: the query string, then the body (JSON,
    or a form as python-telegram-bot sends it)."""
    params = dict(request.query_params)
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await request.body()
    if not body:
        return params
    if kind == "application/json":
        data = json.loads(body)
        if not isinstance(data, dict):
            raise ValueError("the body is not a JSON object")
        params.update(data)
    elif kind == "application/x-www-form-urlencoded":
        params.update(parse_qsl(body.decode(), keep_blank_values=True))
    elif kind == "multipart/form-data":
        raise ValueError("the sandbox takes no uploads: send media by URL")
    return params
