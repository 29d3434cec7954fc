"""`python -m sandbox`: the Telegram Bot API sandbox on TELEGRAM_SANDBOX_HOST:
TELEGRAM_SANDBOX_PORT, accepting TELEGRAM_BOT_TOKEN on the Bot API and
TELEGRAM_SANDBOX_CONTROL_TOKEN on its control API, storing under
ADTECH_DATA_DIR/telegram-sandbox/."""
import logging

import uvicorn
from pydantic import Field, field_validator

from common.listening import listening_socket
from common.logs import configure_logging
from common.settings import MIN_SECRET_LENGTH, PLACEHOLDERS, CommonSettings, load_settings
from sandbox import TOKEN
from sandbox.app import create_app
from sandbox.limits import FloodLimits
from sandbox.store import Store

log = logging.getLogger("sandbox")
FLOOD = FloodLimits()


class Settings(CommonSettings):
    telegram_sandbox_host: str = Field(default="127.0.0.1", description="Address the Bot API sandbox listens on")
    telegram_sandbox_port: int = Field(default=8081, ge=0, le=65535, description="Port of the Bot API sandbox (0: any free one)")
    telegram_bot_token: str = Field(description="The one bot token the sandbox accepts, `<digits>:<secret>`; required")
    telegram_sandbox_control_token: str = Field(
        description="Bearer token of the Bot API sandbox's control API (a secret, no default; `adtech run` generates it"
                    " into the data directory when unset)")
    telegram_sandbox_flood_control: bool = Field(
        default=FLOOD.enabled, description="Bot API sandbox: flood control on (sends over the TELEGRAM_SANDBOX_FLOOD_*"
                                           " limits answer 429 with retry_after, docs/sandbox.md); false turns every"
                                           " limit off")
    telegram_sandbox_flood_chat_per_s: float = Field(
        default=FLOOD.chat_per_s, ge=0, description="Bot API sandbox flood control: messages a second to one chat,"
                                                    " sustained (0: no per-chat limit)")
    telegram_sandbox_flood_chat_burst: int = Field(
        default=FLOOD.chat_burst, ge=0, description="Bot API sandbox flood control: messages to one chat at once"
                                                    " before the per-second limit applies (0: no per-chat limit)")
    telegram_sandbox_flood_channel_per_minute: int = Field(
        default=FLOOD.channel_per_minute, ge=0, description="Bot API sandbox flood control: messages a minute to one"
                                                            " group or channel (0: no such limit)")
    telegram_sandbox_flood_global_per_s: int = Field(
        default=FLOOD.global_per_s, ge=0, description="Bot API sandbox flood control: messages a second to every chat"
                                                      " together (0: no such limit)")

    @field_validator("telegram_bot_token")
    @classmethod
    def _real_token(cls, value: str) -> str:
        match = TOKEN.fullmatch(value)
        if not match:
            raise ValueError("must look like a bot token, <digits>:<letters, digits, - or _>")
        secret = match.group(2)
        if secret.lower() in PLACEHOLDERS or len(secret) < MIN_SECRET_LENGTH:
            raise ValueError(f"is a placeholder or its secret is shorter than {MIN_SECRET_LENGTH} characters")
        return value

    @field_validator("telegram_sandbox_control_token")
    @classmethod
    def _real_control_token(cls, value: str) -> str:
        if value.lower() in PLACEHOLDERS or len(value) < MIN_SECRET_LENGTH:
            raise ValueError(f"is a placeholder or shorter than {MIN_SECRET_LENGTH} characters")
        return value

    def flood(self) -> FloodLimits:
        return FloodLimits(enabled=self.telegram_sandbox_flood_control, chat_per_s=self.telegram_sandbox_flood_chat_per_s,
                           chat_burst=self.telegram_sandbox_flood_chat_burst,
                           channel_per_minute=self.telegram_sandbox_flood_channel_per_minute,
                           global_per_s=self.telegram_sandbox_flood_global_per_s)


def main() -> None:
    settings = load_settings(Settings)
    configure_logging("telegram-sandbox", settings.log_level)
    folder = settings.data_dir() / "telegram-sandbox"
    store = Store(folder / "sandbox.sqlite3")
    sock = listening_socket(settings.telegram_sandbox_host, settings.telegram_sandbox_port, "TELEGRAM_SANDBOX_PORT")
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    page_url = f"http://{shown}:{port}/"
    # The access log stays off: every Bot API path carries the token.
    app = create_app(store, settings.telegram_bot_token, settings.telegram_sandbox_control_token, settings.flood())
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off", timeout_graceful_shutdown=1)
    log.info("Telegram Bot API sandbox: page %s, Bot API at %s", page_url, page_url.rstrip("/"),
             extra={"fields": {"page_url": page_url, "api_url": page_url.rstrip("/"), "data": str(folder)}})
    try:
        uvicorn.Server(config).run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        store.close()


if __name__ == "__main__":
    main()
