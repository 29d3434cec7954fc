"""The moderator console: a static page and its ES modules, served by the
gateway from this package (no CDN, no build step), talking to the public
HTTP API only. Every answer under /console carries a strict
Content-Security-Policy (scripts and styles from this origin only, no
inline code, never framed), so a creative's text can never run as code."""
import importlib.resources

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from common.reasons import Reason
from gateway.errors import error_response

CONSOLE_URL = "/console"
ASSETS_URL = "/console/assets"
STATIC = importlib.resources.files(__name__) / "static"

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
                               "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
                               "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    # The page holds a token in the tab: never kept by a shared cache.
    "Cache-Control": "no-store",
}
_RAW_HEADERS = [(name.lower().encode(), value.encode()) for name, value in SECURITY_HEADERS.items()]


class SecuredFiles(StaticFiles):
    """StaticFiles whose every answer, a 404 included, carries the console's headers."""

    async def get_response(self, path: str, scope):
        # Answered here, not by the app's handler: the answer must pass
        # through __call__ to get the headers.
        try:
            return await super().get_response(path, scope)
        except HTTPException as error:
            if error.status_code == 405:
                return error_response(405, Reason.METHOD_NOT_ALLOWED, "method not allowed on this route",
                                      {"Allow": "GET, HEAD"})
            return error_response(404, Reason.NOT_FOUND, "no such file")

    async def __call__(self, scope, receive, send):
        async def with_headers(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), *_RAW_HEADERS]}
            await send(message)
        await super().__call__(scope, receive, with_headers)


def install_console(app: FastAPI) -> None:
    app.mount(ASSETS_URL, SecuredFiles(directory=str(STATIC)), name="console_assets")

    @app.get(CONSOLE_URL, include_in_schema=False)
    async def console() -> FileResponse:
        return FileResponse(str(STATIC / "index.html"), media_type="text/html", headers=SECURITY_HEADERS)
