"""What every `adtech` subcommand shares: the contexts it knows, its Settings
(including where each service is reached), and the failure that ends a
command with one line."""
from pydantic import Field

from common.settings import (CAMPAIGNS_DATABASE, CAMPAIGNS_PORT, MODERATION_DATABASE, MODERATION_PORT,
                             PAYMENTS_DATABASE, PAYMENTS_PORT, TELEGRAM_SANDBOX_PORT, CommonSettings,
                             resolve_secret)
from gateway.settings import GATEWAY_PORT

CONTEXTS = ("payments", "campaigns", "moderation")  # migration and start order
OUTBOX_CONTEXTS = ("campaigns", "moderation")
ROLES = ("admin", "advertiser", "publisher")
WILDCARD_HOSTS = ("0.0.0.0", "::", "")  # listen on every interface
CONTROL_TOKEN = "TELEGRAM_SANDBOX_CONTROL_TOKEN"


class CommandFailed(Exception):
    """The command could not do its job; the process exits 1 with this line."""


class CliSettings(CommonSettings):
    """What the `adtech` command reads (besides the common settings)."""
    adtech_jwt_secret: str | None = Field(default=None, description="HS256 key of user JWTs; generated into the data directory when unset")
    campaigns_database: str = Field(default=CAMPAIGNS_DATABASE, description="Database of campaigns on the server")
    moderation_database: str = Field(default=MODERATION_DATABASE, description="Database of moderation on the server")
    payments_database: str = Field(default=PAYMENTS_DATABASE, description="Database of payments on the server")
    campaigns_port: int = Field(default=CAMPAIGNS_PORT, ge=1, le=65535, description="gRPC port campaigns listens on")
    moderation_port: int = Field(default=MODERATION_PORT, ge=1, le=65535, description="gRPC port moderation listens on")
    payments_port: int = Field(default=PAYMENTS_PORT, ge=1, le=65535, description="gRPC port payments listens on")
    gateway_host: str = Field(default="127.0.0.1", description="Address the HTTP gateway listens on")
    gateway_port: int = Field(default=GATEWAY_PORT, ge=1, le=65535, description="HTTP port of the gateway")
    adtech_replicas: int = Field(default=1, ge=1, le=8, description="`adtech run`: processes of each service, replica i listening on its `*_PORT` + i; callers spread their calls over them")
    telegram_bot_token: str | None = Field(default=None, description="The bot's token (a secret, no default); `adtech run` without it starts the local Bot API sandbox and points the stack at it")
    telegram_sandbox_port: int = Field(default=TELEGRAM_SANDBOX_PORT, ge=1, le=65535, description="`adtech run` without TELEGRAM_BOT_TOKEN: HTTP port of the Bot API sandbox (its page lists each channel's posts)")
    telegram_sandbox_control_token: str | None = Field(default=None, description="Bearer token of the Bot API sandbox's control API (a secret, no default; `adtech run` generates it into the data directory when unset)")
    adtech_stop_grace_seconds: float = Field(default=10.0, gt=0, le=300, description="`adtech run`: how long a stopping process may take before it is killed")

    def sandbox_token(self) -> str:
        """The token the sandbox accepts, generated into the data directory
        once (in Telegram's shape) and reused."""
        from sandbox import new_token

        return resolve_secret("TELEGRAM_SANDBOX_TOKEN", None, self.data_dir(), generate=new_token)

    def sandbox_control_token(self) -> str:
        """The bearer token of the sandbox's control API: the one set, else
        the one generated into the data directory once and reused."""
        return resolve_secret(CONTROL_TOKEN, self.telegram_sandbox_control_token, self.data_dir())

    def sandbox_control_token_source(self) -> str:
        """Where an operator reads that token."""
        if self.telegram_sandbox_control_token:
            return f"${CONTROL_TOKEN}"
        return str(self.data_dir() / "secrets" / CONTROL_TOKEN)

    def jwt_secret(self) -> str:
        return resolve_secret("ADTECH_JWT_SECRET", self.adtech_jwt_secret, self.data_dir())

    def address_given(self, context: str) -> bool:
        """Whether `context`'s `*_ADDR` is set: it then wins over its `*_PORT`."""
        return f"{context}_addr" in self.model_fields_set

    def service_address(self, context: str) -> str:
        """Where `context` is reached, by `adtech run`'s processes and every
        `adtech` command alike: its `*_ADDR` when set, else GRPC_HOST (loopback
        for a wildcard) on its `*_PORT`, where `adtech run` starts it."""
        if self.address_given(context):
            return getattr(self, f"{context}_addr")
        host, port = reachable_host(self.grpc_host), getattr(self, f"{context}_port")
        return ",".join(f"{host}:{port + replica}" for replica in range(self.adtech_replicas))


def reachable_host(host: str) -> str:
    """The host to connect to for a listener on `host`: a wildcard is reached on loopback."""
    return "127.0.0.1" if host in WILDCARD_HOSTS else host
