"""`adtech token`: a user JWT the gateway accepts, for trying the API by hand."""
import argparse
import sys
import time
import uuid

from operations.settings import CliSettings


def mint_token(secret: str, role: str, sub: str, ttl: int, now: float | None = None) -> str:
    """A user JWT exactly as the gateway verifies it (HS256; sub, role, exp)."""
    import jwt

    issued = int(now if now is not None else time.time())
    return jwt.encode({"sub": sub, "role": role, "iat": issued, "exp": issued + ttl}, secret, algorithm="HS256")


# argparse names a type function in its refusal ("invalid _uuid value"), so
# these keep their names.
def _uuid(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a UUID: {value}") from None


def _ttl(value: str) -> int:
    seconds = int(value)
    if not 1 <= seconds <= 30 * 86400:
        raise argparse.ArgumentTypeError("must be between 1 and 2592000 seconds")
    return seconds


def cmd_token(args, settings: CliSettings) -> int:
    sub = args.sub or str(uuid.uuid4())
    token = mint_token(settings.jwt_secret(), args.role, sub, args.ttl)
    if not args.sub:
        print(f"sub={sub}", file=sys.stderr)
    print(token)
    return 0
