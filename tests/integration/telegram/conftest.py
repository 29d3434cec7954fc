"""One Bot API sandbox (the real server, a subprocess) per module, the
channel adapter pointed at it, python-telegram-bot's own Bot on it, and a
raw Bot API caller; tests use fresh random handles and users."""
import uuid

import httpx
import pytest
import telegram

from sandbox.testing import running_sandbox
from services.campaigns.telegram import TelegramChannels


@pytest.fixture(scope="module")
async def sandbox(tmp_path_factory):
    async with running_sandbox(tmp_path_factory.mktemp("telegram")) as running:
        yield running


@pytest.fixture(scope="module")
async def quiet_sandbox(tmp_path_factory):
    """A sandbox of the module's own with flood control off, for modules
    that send more in a second than Telegram lets one bot (a module
    overrides `sandbox` with it)."""
    async with running_sandbox(tmp_path_factory.mktemp("telegram"),
                               env={"TELEGRAM_SANDBOX_FLOOD_CONTROL": "false"}) as running:
        yield running


@pytest.fixture(scope="module")
async def channels(sandbox):
    async with TelegramChannels(sandbox.api_url, sandbox.token, timeout_s=5.0) as adapter:
        yield adapter


@pytest.fixture(scope="module")
async def bot(sandbox):
    """python-telegram-bot's Bot, as a platform process builds it: every
    answer of the sandbox must parse into its types."""
    async with telegram.Bot(sandbox.token, base_url=f"{sandbox.api_url}/bot") as ptb:
        yield ptb


@pytest.fixture(scope="module")
async def bot_api(sandbox):
    """Calls a Bot API method over plain HTTP: (status, body)."""
    async with httpx.AsyncClient(base_url=f"{sandbox.api_url}/bot{sandbox.token}", timeout=30.0) as http:
        async def call(method: str, **params) -> tuple[int, dict]:
            answer = await http.post(f"/{method}", json=params)
            return answer.status_code, answer.json()
        yield call


@pytest.fixture
def handle() -> str:
    return f"@chan_{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def user(sandbox) -> dict:
    """A fresh Telegram user who has written to the bot (so it may answer)."""
    found = await sandbox.create_user(f"u_{uuid.uuid4().hex[:12]}")
    await sandbox.send_message(found["id"], "hello")
    return found
