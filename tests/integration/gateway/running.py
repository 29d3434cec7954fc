"""The real gateway for tests: uvicorn on a free port in the test's event
loop, and tokens minted with the test secret."""
import asyncio
import contextlib
import socket
import time
import uuid

import jwt
import uvicorn

from gateway.app import create_app
from gateway.server import uvicorn_config
from gateway.settings import Settings
from tests import harness


def gateway_settings(data_dir, **overrides) -> Settings:
    base = {"adtech_jwt_secret": harness.JWT_SECRET, "adtech_internal_token": harness.INTERNAL_TOKEN,
            "adtech_data_dir": data_dir, "log_level": "WARNING", "gateway_port": harness.free_port()}
    return Settings(**{**base, **overrides})


def closed_address() -> str:
    """An address where nothing listens (a port just freed)."""
    return f"127.0.0.1:{harness.free_port()}"


@contextlib.asynccontextmanager
async def serving(settings: Settings, app=None):
    """Serves create_app(settings), or `app` when given (one built by
    create_app and extended by the test), over real HTTP; yields the base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # TCP_NODELAY, see gateway.main
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn_config(app or create_app(settings), settings.gateway_read_timeout_s)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


def token(role: str, sub: str | None = None, *, ttl_s: int = 600, secret: str | None = None, **claims) -> str:
    payload = {"sub": sub or str(uuid.uuid4()), "role": role, "exp": int(time.time()) + ttl_s, **claims}
    return jwt.encode(payload, secret or harness.JWT_SECRET, algorithm="HS256")


def bearer(role: str, sub: str | None = None, **kwargs) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(role, sub, **kwargs)}"}
