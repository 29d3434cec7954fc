"""The sandbox's HTTP app: the Bot API at /bot<token>/<method>, the control
API under /sandbox/ (sandbox/control.py) and the page at / (routes in
sandbox/__init__.py; who may call what in sandbox/guard.py). Before a Bot
API call runs: the token's shape (404), the token (401), logOut (401) and
flood control (429, sandbox/limits.py); a successful send is counted
after. Every answer carrying parameters.retry_after carries a Retry-After
header too, as Telegram's do."""
import hmac
import json
import logging
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from sandbox import TOKEN, control, page
from sandbox.answers import ControlError
from sandbox.botapi import BotApi
from sandbox.guard import Guard
from sandbox.limits import Flood, FloodLimits, too_many
from sandbox.store import Store

log = logging.getLogger(__name__)

UNAUTHORIZED = {"ok": False, "error_code": 401, "description": "Unauthorized"}
NOT_FOUND = {"ok": False, "error_code": 404, "description": "Not Found"}


def create_app(store: Store, token: str, control_token: str, flood: FloodLimits | None = None) -> Starlette:
    api = BotApi(store, token)
    guard = Guard(control_token)
    limits = Flood(flood or FloodLimits(), store.clock)

    async def bot_method(request: Request) -> Response:
        # The token is in the path: never logged (the access log is off).
        # Any Host: the platform's containers reach it by the service's name.
        given = request.path_params["token"]
        if not TOKEN.fullmatch(given):
            return JSONResponse(NOT_FOUND, status_code=404)  # no bot's path at all
        if not hmac.compare_digest(given.encode(), token.encode()) or not api.login.admit():
            return JSONResponse(UNAUTHORIZED, status_code=401)
        method = request.path_params["method"]
        try:
            params = await _params(request)
        except ValueError as error:
            return JSONResponse({"ok": False, "error_code": 400, "description": f"Bad Request: {error}"}, 400)
        chat_id = _chat_of(store, params)
        wait = limits.retry_after(method, chat_id)
        if wait is not None:
            status, body = too_many(wait)
        else:
            status, body = await api.call(method, params)
            if status == 200:
                limits.sent(method, _sent_to(body) or chat_id)
        log.debug("%s -> %s", method, status)
        if isinstance(body, str):
            return HTMLResponse(body, status_code=status)
        retry_after = (body.get("parameters") or {}).get("retry_after")
        return JSONResponse(body, status_code=status,
                            headers={"Retry-After": str(retry_after)} if retry_after else None)

    async def no_bot(request: Request) -> Response:
        return JSONResponse(NOT_FOUND, status_code=404)

    async def index(request: Request) -> Response:
        return HTMLResponse(page.render(store, api.people, guard.form_token))

    async def control_error(request: Request, error: ControlError) -> Response:
        return JSONResponse({"error": error.message}, status_code=error.status)

    routes = [Route("/", guard.page(index), methods=["GET"]),
              Route("/bot{token}/{method}", bot_method, methods=["GET", "POST"]),
              Route("/bot{rest:path}", no_bot, methods=["GET", "POST"]),
              *control.routes(api, guard, limits)]
    return Starlette(routes=routes, exception_handlers={ControlError: control_error})


def _chat_of(store: Store, params: dict) -> int | None:
    """The id of the chat a call names, when the sandbox knows it."""
    raw = str(params.get("chat_id", "")).strip()
    if raw.startswith("@"):
        channel = store.channel(raw, create=False)
        return channel.chat_id if channel else None
    try:
        return int(raw)
    except ValueError:
        return None


def _sent_to(body: dict) -> int | None:
    """The chat of the message a successful call sent or edited."""
    result = body.get("result")
    chat = result.get("chat") if isinstance(result, dict) else None
    return chat.get("id") if isinstance(chat, dict) else None


async def _params(request: Request) -> dict:
    """A Bot API call's parameters: the query string, then the body (JSON,
    or a form as python-telegram-bot sends it)."""
    params = dict(request.query_params)
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await request.body()
    if not body:
        return params
    if kind == "application/json":
        try:
            data = json.loads(body)
        except ValueError:
            raise ValueError("can't parse JSON body") from None
        if not isinstance(data, dict):
            raise ValueError("the body is not a JSON object")
        params.update(data)
    elif kind == "application/x-www-form-urlencoded":
        params.update(parse_qsl(body.decode(), keep_blank_values=True))
    elif kind == "multipart/form-data":
        raise ValueError("the sandbox takes no uploads: send media by URL")
    return params
