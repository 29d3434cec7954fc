import pytest


@pytest.fixture(scope="session", autouse=True)
def _telegram(telegram_sandbox):
    """Every campaigns service started here reaches the session's sandbox."""
    return telegram_sandbox
