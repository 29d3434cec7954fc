"""The stack the seed's test plan (E.1–E.5) runs against: ONE `adtech run`
per session, exactly as `make run` starts it (a supervisor, separate
processes, embedded PostgreSQL in a data dir of its own, free ports), stopped
with SIGTERM at the end. With E2E_BASE_URL and E2E_JWT_SECRET set (or
BASE_URL and ADTECH_JWT_SECRET, as `adtech test-compose` sets them), the
suite runs against that stack instead and starts nothing; `adtech verify`
then runs when ADTECH_INTERNAL_TOKEN and the three *_ADDR are set too, and
tests reach its Bot API sandbox when E2E_SANDBOX_URL and
E2E_SANDBOX_CONTROL_TOKEN are set."""
import asyncio
import contextlib
import dataclasses
import os
import pathlib
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid

import httpx
import pytest

from sandbox.testing import SandboxControl, control_headers
from tests.e2e.client import Api
from tests.harness import MANY_CHATS_AT_ONCE, free_port

ROOT = pathlib.Path(__file__).resolve().parents[2]
MIN_LEAD_MS = 30_000  # the documented default of CAMPAIGN_TARGET_MIN_LEAD_MS
READY_WITHIN_S = 90.0
STOP_WITHIN_S = 30.0
SERVICE_ADDRS = ("CAMPAIGNS_ADDR", "MODERATION_ADDR", "PAYMENTS_ADDR")


@dataclasses.dataclass
class E2EStack:
    base_url: str
    jwt_secret: str
    min_lead_ms: int
    verify_env: dict[str, str] | None  # how `adtech verify` reaches the services; None: it cannot
    log: pathlib.Path | None = None
    sandbox_url: str | None = None  # the stack's Bot API sandbox; None: unknown (an external stack)
    sandbox_control_token: str | None = None  # the bearer token of its control API
    data_dir: pathlib.Path | None = None
    proc: subprocess.Popen | None = None

    def sandbox(self) -> SandboxControl | None:
        """A client of the stack's sandbox's control API (close it, or use
        it as `async with`); None when the suite was not told where it is."""
        if not (self.sandbox_url and self.sandbox_control_token):
            return None
        return SandboxControl(self.sandbox_url, self.sandbox_control_token)

    def sandbox_headers(self) -> dict[str, str]:
        """What a plain HTTP client sends to the sandbox's control API."""
        return control_headers(self.sandbox_control_token or "")

    def log_tail(self, lines: int = 80) -> str:
        if self.log is None or not self.log.exists():
            return "(no log: external stack)"
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def _external() -> E2EStack | None:
    base_url = os.environ.get("E2E_BASE_URL") or os.environ.get("BASE_URL")
    if not base_url:
        return None
    secret = os.environ.get("E2E_JWT_SECRET") or os.environ.get("ADTECH_JWT_SECRET")
    if not secret:
        pytest.exit("E2E_BASE_URL is set but E2E_JWT_SECRET is not: tokens cannot be minted", returncode=4)
    # `adtech verify` talks gRPC to the services: only when told where they are.
    reachable = all(os.environ.get(name) for name in ("ADTECH_INTERNAL_TOKEN", *SERVICE_ADDRS))
    verify_env = dict(os.environ) if reachable else None
    sandbox_url = os.environ.get("E2E_SANDBOX_URL")
    return E2EStack(base_url.rstrip("/"), secret, int(os.environ.get("E2E_MIN_LEAD_MS", MIN_LEAD_MS)), verify_env,
                    sandbox_url=sandbox_url.rstrip("/") if sandbox_url else None,
                    sandbox_control_token=os.environ.get("E2E_SANDBOX_CONTROL_TOKEN"))


def _wait_ready(url: str, proc: subprocess.Popen, stack: E2EStack) -> None:
    deadline = time.monotonic() + READY_WITHIN_S
    last = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"adtech run exited {proc.returncode} before ready:\n{stack.log_tail()}")
        try:
            reply = httpx.get(url, timeout=2.0)
            last = f"{reply.status_code} {reply.text[:200]}"
            if reply.status_code == 200:
                return
        except httpx.HTTPError as error:
            last = repr(error)
        time.sleep(0.2)
    raise RuntimeError(f"{url} not 200 within {READY_WITHIN_S:g}s (last: {last}):\n{stack.log_tail()}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)  # the supervisor stops its children and the database
        try:
            proc.wait(timeout=STOP_WITHIN_S)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@contextlib.contextmanager
def run_stack(**settings: str):
    """`adtech run` on free ports in a data dir of its own, with `settings`
    (environment variables) on top of the suite's; stopped with SIGTERM."""
    # Short, world-traversable path: the embedded server runs as its own user
    # and keeps its unix socket under it.
    data_dir = pathlib.Path(tempfile.mkdtemp(prefix="adtech-e2e-"))
    data_dir.chmod(0o755)
    ports = {name: free_port() for name in ("campaigns", "moderation", "payments", "gateway")}
    env = {**os.environ, "ADTECH_DATA_DIR": str(data_dir), "LOG_LEVEL": "WARNING",
           "ADTECH_JWT_SECRET": secrets.token_urlsafe(32), "ADTECH_INTERNAL_TOKEN": secrets.token_urlsafe(32),
           "CAMPAIGN_TARGET_MIN_LEAD_MS": str(MIN_LEAD_MS), "MODERATION_APPROVE_WAIT_MS": "10000",
           "TELEGRAM_SANDBOX_PORT": str(free_port()), "TELEGRAM_SANDBOX_CONTROL_TOKEN": secrets.token_urlsafe(32),
           # The load test links E2E_LOAD_N owners at once: the bot answers them all in a burst.
           "PYTHONUNBUFFERED": "1", **MANY_CHATS_AT_ONCE, **settings}
    env.pop("TELEGRAM_BOT_TOKEN", None)  # posts go to the stack's own Bot API sandbox
    for name in (*SERVICE_ADDRS, "BASE_URL", "E2E_BASE_URL", "E2E_SANDBOX_URL", "E2E_SANDBOX_CONTROL_TOKEN"):
        # an external stack's, not this one's
        env.pop(name, None)
    if env.get("DATABASE_URL"):  # a shared server: databases of our own on it
        suffix = uuid.uuid4().hex[:8]
        env.update({f"{c.upper()}_DATABASE": f"adtech_{c}_e2e{suffix}" for c in ("campaigns", "moderation", "payments")})
    env.update({f"{name.upper()}_PORT": str(port) for name, port in ports.items()})
    verify_env = {**env, **{f"{c.upper()}_ADDR": f"127.0.0.1:{ports[c]}" for c in ("campaigns", "moderation", "payments")}}
    stack = E2EStack(f"http://127.0.0.1:{ports['gateway']}", env["ADTECH_JWT_SECRET"],
                     int(env["CAMPAIGN_TARGET_MIN_LEAD_MS"]), verify_env, log=data_dir / "adtech-run.log",
                     sandbox_url=f"http://127.0.0.1:{env['TELEGRAM_SANDBOX_PORT']}",
                     sandbox_control_token=env["TELEGRAM_SANDBOX_CONTROL_TOKEN"], data_dir=data_dir)
    args = [arg for name, port in ports.items() for arg in (f"--{name}-port", str(port))]
    with open(stack.log, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "operations", "run", *args], cwd=ROOT, env=env,
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    stack.proc = proc
    try:
        _wait_ready(f"{stack.base_url}/api/health/ready", proc, stack)
        yield stack
    finally:
        _stop(proc)
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def _telegram(telegram_sandbox):
    """Services started in-process here (tests/stack.py) reach the session's
    sandbox; `adtech run` starts its own."""
    return telegram_sandbox


@pytest.fixture(scope="session")
def e2e_stack():
    external = _external()
    if external is not None:
        yield external
        return
    with run_stack() as stack:
        yield stack


@pytest.fixture(scope="session")
async def api(e2e_stack):
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    sandbox = e2e_stack.sandbox()
    async with httpx.AsyncClient(base_url=e2e_stack.base_url, timeout=30.0, limits=limits) as http:
        yield Api(http, e2e_stack.jwt_secret, e2e_stack.min_lead_ms, sandbox)
    if sandbox is not None:
        await sandbox.aclose()


def verify_runner(stack: E2EStack):
    """Runs `adtech verify` against `stack` as an operator would: (exit code, stdout, stderr)."""
    async def run(*args: str) -> tuple[int, str, str]:
        if stack.verify_env is None:
            pytest.skip("external stack: set ADTECH_INTERNAL_TOKEN and CAMPAIGNS_ADDR, MODERATION_ADDR, PAYMENTS_ADDR to run `adtech verify`")
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "operations", "verify", *args, cwd=ROOT, env=stack.verify_env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
        return proc.returncode, out.decode(), err.decode()
    return run


@pytest.fixture(scope="session")
def adtech_verify(e2e_stack):
    return verify_runner(e2e_stack)
