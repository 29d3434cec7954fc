"""`adtech run` stops whenever it is told to, and a crash loses nothing.

- SIGTERM at any moment of start-up (starting the database, migrating,
  starting the processes, ready) stops every process of the installation,
  the embedded database included, twenty times in a row, some of them right
  after a crash of the supervisor (SIGKILL) left the data directory behind.
- A SIGKILLed supervisor leaves nothing running: its processes follow it,
  and the reaper stops the database.
- SIGKILL of every process of the installation, the database included, in
  the middle of concurrent approves: after a restart every decision
  recorded before the crash ends (approved or failed) within 5 s of the
  stack being ready, and `adtech verify` finds nothing wrong."""
import asyncio
import os
import signal
import subprocess
import time
import uuid

import httpx
import pytest

from sandbox.testing import SandboxControl
from tests.e2e.client import mint
from tests.e2e.test_run_stack import GRACE_S, Stack, adtech, alive, processes_of
from tests.harness import free_slot

pytestmark = pytest.mark.skipif(bool(os.environ.get("BASE_URL")), reason="needs to start and kill its own stack")

STOPPED_WITHIN_S = GRACE_S + 20


def assert_nothing_left(data_dir, stack: Stack) -> None:
    deadline = time.monotonic() + 15
    while processes_of(data_dir) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_of(data_dir) == [], stack.output()


def kill_everything(data_dir) -> None:
    for line in processes_of(data_dir):
        try:
            os.kill(int(line.split(":")[0]), signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_sigterm_at_any_moment_of_start_up_stops_everything_twenty_times_in_a_row(tmp_path):
    for attempt in range(20):
        stack = Stack(tmp_path)
        try:
            time.sleep(0.15 * attempt)  # from before the database to ready
            if attempt % 5 == 4:  # a crash first: the next start finds what it left
                stack.proc.send_signal(signal.SIGKILL)
                stack.proc.wait(5)
                assert_nothing_left(tmp_path, stack)
                continue
            stack.proc.send_signal(signal.SIGTERM)
            try:
                code = stack.proc.wait(STOPPED_WITHIN_S)
            except subprocess.TimeoutExpired:
                raise AssertionError(f"attempt {attempt}: SIGTERM did not stop adtech run:\n{stack.output()}")
            # -SIGTERM: it came before the handler was installed, when nothing had started yet
            assert code in (0, 1, -signal.SIGTERM), stack.output()
            assert_nothing_left(tmp_path, stack)
        finally:
            stack.kill_leftovers()
            kill_everything(tmp_path)


def test_a_killed_supervisor_leaves_no_process_and_no_database_behind(tmp_path):
    stack = Stack(tmp_path)
    try:
        stack.wait_ready_status(200, timeout=30)
        database = stack.database_pid()
        assert database and alive(database)
        stack.proc.send_signal(signal.SIGKILL)
        stack.proc.wait(5)
        assert_nothing_left(tmp_path, stack)
        assert not alive(database)
    finally:
        stack.kill_leftovers()
        kill_everything(tmp_path)


# ---- a whole-installation crash in the middle of approves ----------------------------
def token(secret: str, role: str, sub: str | None = None) -> dict:
    return {"Authorization": f"Bearer {mint(secret, role, sub)}"}


def sandbox_of(stack: Stack, data_dir) -> SandboxControl:
    """The installation's Bot API sandbox: its port from the environment,
    its control token as `adtech run` generated it into the data dir."""
    control_token = stack.env.get("TELEGRAM_SANDBOX_CONTROL_TOKEN") or \
        (data_dir / "secrets" / "TELEGRAM_SANDBOX_CONTROL_TOKEN").read_text().strip()
    return SandboxControl(f"http://127.0.0.1:{stack.env['TELEGRAM_SANDBOX_PORT']}", control_token)


async def owned_chat(http: httpx.AsyncClient, sandbox: SandboxControl, publisher: dict) -> str:
    """A chat whose creator is the publisher's Telegram account, linked as a
    person links it (`/start <code>` to the stack's bot)."""
    account = await sandbox.create_user()
    link = await http.post("/api/me/telegram/link", headers=publisher)
    assert link.status_code == 201, link.text
    await sandbox.send_message(account["id"], f"/start {link.json()['code']}")
    deadline = time.monotonic() + 15
    while not (await http.get("/api/me/telegram", headers=publisher)).json()["linked"]:
        assert time.monotonic() < deadline, "the bot did not link the publisher within 15 s"
        await asyncio.sleep(0.05)
    handle = f"@crash_{uuid.uuid4().hex[:10]}"
    await sandbox.set_member(handle, account["id"], "creator")
    return handle


async def approvable_targets(http: httpx.AsyncClient, admin: dict, secret: str, count: int,
                             sandbox: SandboxControl) -> list[str]:
    publisher = token(secret, "publisher")
    handle = await owned_chat(http, sandbox, publisher)
    listed = await http.post("/api/channels", headers=publisher, json={
        "title": "Crash news", "handle": handle, "pricePerPost": 100, "autoAccept": True})
    assert listed.status_code == 201, listed.text
    channel = listed.json()
    assert (await http.post(f"/api/channels/{channel['id']}/approve", headers=admin)).status_code == 200
    targets = []
    for _ in range(count):
        advertiser_id = str(uuid.uuid4())
        advertiser = token(secret, "advertiser", advertiser_id)
        assert (await http.get("/api/wallet", headers=advertiser)).status_code == 200
        funded = await http.post(f"/api/wallets/{advertiser_id}/deposits", headers={
            **admin, "Idempotency-Key": uuid.uuid4().hex}, json={"amount": 1_000})
        assert funded.status_code == 201, funded.text
        campaign = (await http.post("/api/campaigns", headers=advertiser,
                                    json={"name": "Crash", "creatives": [{"text": "hi"}]})).json()
        await http.post(f"/api/campaigns/{campaign['id']}/activate", headers=advertiser)
        target = (await http.post(f"/api/campaigns/{campaign['id']}/targets", headers=advertiser, json={
            "channelId": channel["id"], "scheduledAt": free_slot().isoformat()})).json()
        submitted = await http.post(f"/api/campaigns/{campaign['id']}/targets/{target['id']}/submit",
                                    headers=advertiser)
        assert submitted.status_code == 200, submitted.text
        targets.append(target["id"])
    return targets


async def approve_until_killed(http: httpx.AsyncClient, admin: dict, targets: list[str]) -> None:
    async def approve(target_id):
        try:
            await http.post(f"/api/moderation/targets/{target_id}/approve", headers=admin, timeout=10)
        except httpx.HTTPError:
            pass  # the stack died under it
    await asyncio.gather(*(approve(t) for t in targets))


async def decisions(http: httpx.AsyncClient, admin: dict, targets: list[str]) -> dict[str, str | None]:
    found = {}
    for target_id in targets:
        reply = await http.get(f"/api/moderation/targets/{target_id}", headers=admin)
        found[target_id] = reply.json()["status"] if reply.status_code == 200 else None
    return found


def test_after_a_whole_installation_crash_mid_approves_every_recorded_decision_ends_within_5_s(tmp_path):
    stack = Stack(tmp_path)
    try:
        stack.wait_ready_status(200, timeout=30)
        secret = (tmp_path / "secrets" / "ADTECH_JWT_SECRET").read_text().strip()
        admin = token(secret, "admin")

        async def before_the_crash():
            async with httpx.AsyncClient(base_url=stack.base_url, timeout=10) as http, \
                    sandbox_of(stack, tmp_path) as sandbox:
                targets = await approvable_targets(http, admin, secret, 30, sandbox)
                load = asyncio.create_task(approve_until_killed(http, admin, targets[:20]))
                await asyncio.sleep(0.15)  # approves in flight
                kill_everything(tmp_path)  # every process of the installation, PostgreSQL included
                await load
                return targets
        targets = asyncio.run(before_the_crash())
        stack.proc.wait(5)
    finally:
        stack.kill_leftovers()
        kill_everything(tmp_path)

    stack = Stack(tmp_path, port_variables=True)  # the same installation, started again
    try:
        stack.wait_ready_status(200, timeout=30)
        ready_at = time.monotonic()

        async def after_the_restart():
            async with httpx.AsyncClient(base_url=stack.base_url, timeout=10) as http:
                while True:
                    found = await decisions(http, admin, targets)
                    running = {t: s for t, s in found.items() if s not in (None, "approved", "failed")}
                    if not running or time.monotonic() - ready_at > 5:
                        return found, running
                    await asyncio.sleep(0.1)
        found, running = asyncio.run(after_the_restart())
        assert running == {}, f"still running 5 s after ready: {running}\n{stack.output()}"
        assert any(status is not None for status in found.values()), "no decision was recorded before the crash"
        assert all(status is None for t, status in found.items() if t in targets[20:])
        verified = adtech(stack.env, "verify")
        assert verified.returncode == 0, verified.stdout + verified.stderr
    finally:
        stack.kill_leftovers()
        kill_everything(tmp_path)
