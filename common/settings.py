"""Settings shared by every process. Each process defines one Settings class
(a subclass), builds it in `main` and passes it down; nothing else reads the
environment.

Secrets have no default: when unset they are generated once into the data
directory and reused, so every process of one installation agrees on them
without anyone choosing a well-known value."""
import os
import pathlib
import secrets
import sys
from collections.abc import Callable

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDERS = {"changeme", "change-me", "secret", "password", "test", "default", "example", "dev"}
MIN_SECRET_LENGTH = 16

# Where each service listens and which database it owns unless told
# otherwise; its peers and the operator's command line assume the same.
CAMPAIGNS_PORT = 50051
MODERATION_PORT = 50052
PAYMENTS_PORT = 50053
TELEGRAM_SANDBOX_PORT = 8081
CAMPAIGNS_DATABASE = "adtech_campaigns"
MODERATION_DATABASE = "adtech_moderation"
PAYMENTS_DATABASE = "adtech_payments"


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore", case_sensitive=False)

    database_url: str | None = Field(default=None, description="PostgreSQL server URL; unset starts an embedded server under the data directory")
    adtech_data_dir: pathlib.Path = Field(default=pathlib.Path(".data"), description="Where the embedded database and generated secrets live")
    adtech_internal_token: str | None = Field(default=None, description="Credential every internal gRPC call carries; generated into the data directory when unset")
    log_level: str = Field(default="INFO", description="Python logging level")
    grpc_host: str = Field(default="127.0.0.1", description="Address the gRPC services listen on")
    campaigns_addr: str = Field(default=f"127.0.0.1:{CAMPAIGNS_PORT}", description="Where campaigns is reached")
    moderation_addr: str = Field(default=f"127.0.0.1:{MODERATION_PORT}", description="Where moderation is reached")
    payments_addr: str = Field(default=f"127.0.0.1:{PAYMENTS_PORT}", description="Where payments is reached")
    grpc_deadline_ms: int = Field(default=5000, ge=50, le=120_000, description="Deadline of every internal gRPC call")

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        if value.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return value.upper()

    def data_dir(self) -> pathlib.Path:
        path = self.adtech_data_dir.resolve()
        path.mkdir(parents=True, exist_ok=True)
        return path

    def internal_token(self) -> str:
        return resolve_secret("ADTECH_INTERNAL_TOKEN", self.adtech_internal_token, self.data_dir())


def resolve_secret(name: str, value: str | None, data_dir: pathlib.Path,
                   generate: Callable[[], str] = lambda: secrets.token_urlsafe(32)) -> str:
    """The configured secret, refused when it is a placeholder; else the one
    generated into `data_dir/secrets/<name>` (created on first use)."""
    if value:
        return checked_secret(name, value)
    folder = data_dir / "secrets"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / name
    try:
        # O_EXCL: of several processes starting at once, exactly one writes it.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        for _ in range(50):
            stored = path.read_text().strip()
            if stored:
                return stored
            import time
            time.sleep(0.02)
        raise ConfigError(f"{name}: {path} is empty")
    generated = generate()
    with os.fdopen(fd, "w") as handle:
        handle.write(generated)
    return generated


def checked_secret(name: str, value: str) -> str:
    """A configured secret, refused when it is a placeholder or too short."""
    if value.lower() in PLACEHOLDERS or len(value) < MIN_SECRET_LENGTH:
        raise ConfigError(f"{name} is a placeholder or shorter than {MIN_SECRET_LENGTH} characters")
    return value


class ConfigError(Exception):
    """A setting is missing or invalid; the process stops with one line."""


def load_settings(cls: type[BaseSettings]) -> BaseSettings:
    """Builds settings or exits with one line naming the bad setting."""
    try:
        return cls()
    except ValidationError as error:
        first = error.errors()[0]
        name = ".".join(str(p) for p in first["loc"]).upper()
        sys.exit(f"config error: {name}: {first['msg']}")


def fail_fast(message: str) -> None:
    sys.exit(f"config error: {message}")
