"""The sandbox's HTTP app: the Bot API at /bot<token>/<method>, the control
API under /sandbox/ (sandbox/control.py) and the page at / (routes in
sandbox/__init__.py; who may call what in sandbox/guard.py)."""
import hmac
import json
import logging
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from sandbox import control, page
from sandbox.answers import ControlError
from sandbox.botapi import BotApi
from sandbox.guard import Guard
from sandbox.store import Store

log = logging.getLogger(__name__)

UNAUTHORIZED = {"ok": False, "error_code": 401, "description": "Unauthorized"}


def create_app(store: Store, token: str, control_token: str) -> Starlette:
    api = BotApi(store, token)
    guard = Guard(control_token)

    async def bot_method(request: Request) -> Response:
        # The token is in the path: never logged (the access log is off).
        # Any Host: the platform's containers reach it by the service's name.
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
        return HTMLResponse(page.render(store, api.people, guard.form_token))

    async def control_error(request: Request, error: ControlError) -> Response:
        return JSONResponse({"error": error.message}, status_code=error.status)

    routes = [Route("/", guard.page(index), methods=["GET"]),
              Route("/bot{token}/{method}", bot_method, methods=["GET", "POST"]),
              *control.routes(api, guard)]
    return Starlette(routes=routes, exception_handlers={ControlError: control_error})


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
