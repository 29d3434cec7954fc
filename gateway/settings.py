"""The gateway's settings: where it listens, the JWT secret, how long an
approve waits for its saga. Built once in `main` (or by a test) and passed
to `create_app`."""
import urllib.parse

from pydantic import Field, field_validator

from common.settings import CommonSettings, resolve_secret

# Where the gateway listens unless told otherwise (`adtech run` assumes it too).
GATEWAY_PORT = 4002


class Settings(CommonSettings):
    gateway_host: str = Field(default="127.0.0.1", description="Address the HTTP gateway listens on")
    gateway_port: int = Field(default=GATEWAY_PORT, ge=1, le=65535, description="Port of the HTTP gateway")
    adtech_jwt_secret: str | None = Field(
        default=None, description="HS256 secret of user tokens; generated into the data directory when unset")
    gateway_max_body_bytes: int = Field(
        default=1024 * 1024, ge=1024, le=1024 ** 3,
        description="Largest request body the gateway reads; a larger one is 413 before parsing or auth")
    gateway_read_timeout_s: float = Field(
        default=15, gt=0, le=3600,
        description="A client that sends nothing for this long while its request is arriving is dropped")
    gateway_cors_origins: str = Field(
        default="", description="Comma-separated origins (scheme://host[:port]) a browser page may call the API "
                                "from; empty: no CORS")
    adtech_jwt_max_ttl_s: int = Field(
        default=86_400, ge=60, le=31_536_000,
        description="How far ahead (seconds) a user token's exp may lie; further is 401")
    # At most what moderation accepts as a call's wait (30 s).
    moderation_approve_wait_ms: int = Field(
        default=3000, ge=0, le=30_000,
        description="How long an HTTP approve waits for its saga before answering 202")

    @field_validator("gateway_cors_origins")
    @classmethod
    def _explicit_origins(cls, value: str) -> str:
        for origin in _split(value):
            parts = urllib.parse.urlsplit(origin)
            if parts.scheme not in ("http", "https") or not parts.hostname or "*" in origin \
                    or origin != f"{parts.scheme}://{parts.netloc}":
                raise ValueError(f"{origin!r} is not an origin like https://app.example.com[:port] "
                                 "(no wildcard, path or trailing slash)")
        return value

    def cors_origins(self) -> tuple[str, ...]:
        return tuple(_split(self.gateway_cors_origins))

    def moderation_call_deadline_s(self) -> float:
        """An approve or reject waits for its saga, then answers within the
        usual deadline of a call."""
        return (self.moderation_approve_wait_ms + self.grpc_deadline_ms) / 1000

    def jwt_secret(self) -> str:
        """The configured secret (placeholders refused) or the generated one."""
        return resolve_secret("ADTECH_JWT_SECRET", self.adtech_jwt_secret, self.data_dir())


def _split(origins: str) -> list[str]:
    return [origin.strip() for origin in origins.split(",") if origin.strip()]
