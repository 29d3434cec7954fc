"""One Bot API sandbox (the real server, a subprocess) per module, and the
channel adapter pointed at it; tests use fresh random handles."""
import uuid

import pytest

from sandbox.testing import running_sandbox
from services.campaigns.telegram import TelegramChannels


@pytest.fixture(scope="module")
async def sandbox(tmp_path_factory):
    async with running_sandbox(tmp_path_factory.mktemp("telegram")) as running:
        yield running


@pytest.fixture(scope="module")
async def channels(sandbox):
    async with TelegramChannels(sandbox.api_url, sandbox.token, timeout_s=5.0) as adapter:
        yield adapter


@pytest.fixture
def handle() -> str:
    return f"@chan_{uuid.uuid4().hex[:12]}"
