"""Entry point of the gateway process: `python -m gateway.main`."""
import uvicorn

from common.listening import listening_socket
from common.logs import configure_logging
from common.settings import ConfigError, fail_fast, load_settings
from gateway.app import create_app
from gateway.server import uvicorn_config
from gateway.settings import Settings


def _installed(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def main() -> None:
    settings = load_settings(Settings)
    configure_logging("gateway", settings.log_level)
    try:
        app = create_app(settings)
    except ConfigError as error:
        fail_fast(str(error))
    sock = listening_socket(settings.gateway_host, settings.gateway_port, "GATEWAY_PORT")
    config = uvicorn_config(app, settings.gateway_read_timeout_s, loop="uvloop" if _installed("uvloop") else "asyncio",
                            timeout_graceful_shutdown=5)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it drained on
        pass


if __name__ == "__main__":
    main()
