"""Starting real parts for tests: PostgreSQL databases and gRPC services on
free ports, in the test's event loop."""
import asyncio
import datetime as dt
import itertools
import importlib
import os
import pathlib
import secrets
import socket
import uuid

from common.bootstrap import RunningService, start_service
from common.db import database_url_for, ensure_database, server_url
from common.migrations import upgrade_async

INTERNAL_TOKEN = secrets.token_urlsafe(24)
JWT_SECRET = secrets.token_urlsafe(32)


def pg_server_url(data_dir: pathlib.Path) -> str:
    """DATABASE_URL when given, else one embedded server for the whole run."""
    return server_url(os.environ.get("DATABASE_URL"), data_dir)


async def fresh_database(server: str, context: str) -> str:
    """A new, migrated database for `context` (campaigns, moderation, payments)."""
    name = f"adtech_{context}_t{uuid.uuid4().hex[:10]}"
    await ensure_database(server, name)
    url = database_url_for(server, name)
    await upgrade_async(context, url)
    return name


# Where campaigns reaches the Bot API in tests: the session's sandbox
# (tests/integration/conftest.py fills it in).
TELEGRAM: dict[str, str] = {}
# The session's sandbox itself (its control API), once started.
SANDBOX: list = []
# Settings of a sandbox that a bot floods on purpose (dozens of users
# answered at once): Telegram's limit of about 30 messages a second over all
# chats raised, so those tests measure the bot, not the wait; the per-chat
# and per-channel limits stay Telegram's (docs/sandbox.md, "Flood control").
MANY_CHATS_AT_ONCE = {"TELEGRAM_SANDBOX_FLOOD_GLOBAL_PER_S": "1000"}


def sandbox():
    """The session's Bot API sandbox (tests/conftest.py's telegram_sandbox)."""
    assert SANDBOX, "the telegram_sandbox fixture has not started the session's sandbox"
    return SANDBOX[0]


def settings_for(context: str, server: str, data_dir: pathlib.Path, **overrides):
    module = importlib.import_module(f"services.{context}.main")
    base = {"database_url": server, "adtech_data_dir": data_dir, "adtech_internal_token": INTERNAL_TOKEN,
            "log_level": "WARNING", **(TELEGRAM if context == "campaigns" else {})}
    return module.Settings(**{**base, **overrides})


async def start(context: str, settings) -> RunningService:
    """Assembles the service exactly as its main does and serves it on a free port."""
    module = importlib.import_module(f"services.{context}.main")
    assembly = await module.assemble(settings)
    return await start_service(context, settings, assembly, "127.0.0.1:0")


def free_port(count: int = 1) -> int:
    """A free port, and the `count - 1` after it free too (for replicas)."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            first = sock.getsockname()[1]
        if first + count <= 65536 and all(_bindable(first + i) for i in range(1, count)):
            return first


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


async def eventually(check, *, timeout: float = 10.0, interval: float = 0.02):
    """Polls an async predicate until it returns a truthy value."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await check()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last: {value!r})")
        await asyncio.sleep(interval)


# Posts of one channel must be a slot apart (CHANNEL_POST_GAP_MINUTES, 60 by
# default) and at most BOOKING_HORIZON_DAYS (31) ahead: each call answers a
# time a day ahead and 61 minutes after the previous one (cycling within the
# horizon), so targets made by tests never share a slot unless a test means it.
_SLOTS = itertools.count()


def free_slot() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1, minutes=61 * (next(_SLOTS) % 600))
