"""Entry point of the gateway process: `python -m gateway.main`."""
import socket

import uvicorn

from common.logs import configure_logging
from common.settings import ConfigError, fail_fast, load_settings
from gateway.app import create_app
from gateway.settings import Settings


def _installed(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, or one line naming the busy port."""
    try:
        # proto=IPPROTO_TCP: asyncio sets TCP_NODELAY only on sockets that say
        # so; without it Nagle and delayed ACKs add 40 ms to keep-alive requests.
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as error:
        fail_fast(f"GATEWAY_PORT: cannot listen on {host}:{port}: {error.strerror or error}")
    sock.set_inheritable(True)
    return sock


def main() -> None:
    settings = load_settings(Settings)
    configure_logging("gateway", settings.log_level)
    try:
        app = create_app(settings)
    except ConfigError as error:
        fail_fast(str(error))
    sock = bind(settings.gateway_host, settings.gateway_port)
    config = uvicorn.Config(
        app, loop="uvloop" if _installed("uvloop") else "asyncio",
        http="httptools" if _installed("httptools") else "h11",
        log_config=None, access_log=False, lifespan="on", timeout_graceful_shutdown=5)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it drained on
        pass


if __name__ == "__main__":
    main()
