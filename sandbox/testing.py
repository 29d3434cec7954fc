"""The sandbox for tests: `running_sandbox(tmp_path)` starts the real server
(`python -m sandbox`, a subprocess on a free port, with a fresh bot token
and control token) and yields a `SandboxProcess`: its URLs, its tokens and
the control API's methods. `SandboxControl(base_url, control_token)` is
that client alone, for a sandbox running elsewhere (a stack's).

    async with running_sandbox(tmp_path) as sandbox:
        channels = TelegramChannels(sandbox.api_url, sandbox.token)
        ...
        await sandbox.refuse("@news", "not_admin")
        assert [post["text"] for post in await sandbox.posts("@news")] == [...]
        user = await sandbox.create_user("alice_tg")
        await sandbox.send_message(user["id"], "/start")
        await sandbox.advance_clock(49 * 3600)  # the sandbox's time, for every date and limit

`running_sandbox(tmp_path, env={"TELEGRAM_SANDBOX_FLOOD_GLOBAL_PER_S": "1000"})`
starts it with settings of its own (docs/sandbox.md).
"""
import asyncio
import contextlib
import json
import os
import pathlib
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator

import httpx

from sandbox import new_token

START_S = 15.0
# The checkout this module is in: the process runs its code.
ROOT = pathlib.Path(__file__).resolve().parent.parent


def control_headers(control_token: str) -> dict[str, str]:
    """The header every control API call carries."""
    return {"Authorization": f"Bearer {control_token}"}


class SandboxControl:
    """A client of one sandbox's control API at `base_url` (its page's URL,
    on a loopback address). Its HTTP client opens on first use; close it
    with `aclose()` or use it as `async with`. Every method raises
    httpx.HTTPStatusError on a refusal."""

    def __init__(self, base_url: str, control_token: str, *, timeout_s: float = 10.0):
        self.base_url = base_url.rstrip("/")
        self.control_token = control_token
        self.timeout_s = timeout_s
        self._client: httpx.AsyncClient | None = None

    async def __aenter__(self) -> "SandboxControl":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(base_url=self.base_url, timeout=self.timeout_s,
                                             headers=control_headers(self.control_token))
        return self._client

    async def _request(self, method: str, path: str, body: dict | None = None):
        response = await self._http().request(method, path, json=body)
        response.raise_for_status()
        return response.json()

    # ---- channels and posts ----------------------------------------------
    async def channels(self) -> list[dict]:
        return await self._request("GET", "/sandbox/channels")

    async def channel(self, handle: str) -> dict:
        """{"handle", "chat_id", "refuse", "members", "posts"}."""
        return await self._request("GET", f"/sandbox/channels/{handle.lstrip('@')}")

    async def posts(self, handle: str) -> list[dict]:
        """The channel's posts, newest first."""
        return await self._request("GET", f"/sandbox/channels/{handle.lstrip('@')}/posts")

    async def delete(self, handle: str, message_id: int) -> None:
        await self._request("DELETE", f"/sandbox/channels/{handle.lstrip('@')}/posts/{message_id}")

    async def refuse(self, handle: str, mode: str) -> None:
        """mode: not_found, not_admin, no_post_rights, blocked or off."""
        await self._request("POST", f"/sandbox/channels/{handle.lstrip('@')}/refuse", {"mode": mode})

    # ---- faults ------------------------------------------------------------
    async def fault(self, method: str, kind: str, count: int = 1, *, retry_after: int = 5,
                    stall_s: float = 30.0, chat_type: str | None = None) -> None:
        """The next `count` calls of `method` fail: kind 429, 500, 502 or
        stall_after_post; with `chat_type` ("channel" or "private") only
        calls naming a chat of that type."""
        body = {"method": method, "kind": kind, "count": count, "retry_after": retry_after, "stall_s": stall_s}
        await self._request("POST", "/sandbox/faults", {**body, **({"chat_type": chat_type} if chat_type else {})})

    async def faults(self) -> dict:
        return await self._request("GET", "/sandbox/faults")

    async def clear_faults(self) -> None:
        await self._request("DELETE", "/sandbox/faults")

    async def reset(self) -> None:
        await self._request("POST", "/sandbox/reset")

    # ---- the clock and media -------------------------------------------------
    async def clock(self) -> dict:
        """{"now": unix seconds by the sandbox's clock, "offset_s": ahead of this machine's}."""
        return await self._request("GET", "/sandbox/clock")

    async def advance_clock(self, seconds: float) -> dict:
        """Moves the sandbox's time `seconds` forward (never back)."""
        return await self._request("POST", "/sandbox/clock", {"advance_s": seconds})

    async def set_clock(self, now: float) -> dict:
        """Moves the sandbox's time forward to `now` (unix seconds); 409 if that is in its past."""
        return await self._request("POST", "/sandbox/clock", {"now": now})

    async def unreachable(self, url: str) -> None:
        """sendPhoto of `url` answers "failed to get HTTP URL content" from now on."""
        await self._request("POST", "/sandbox/media/unreachable", {"url": url})

    async def unreachable_media(self) -> list[str]:
        return (await self._request("GET", "/sandbox/media/unreachable"))["unreachable"]

    async def clear_unreachable(self) -> None:
        await self._request("DELETE", "/sandbox/media/unreachable")

    # ---- users and the bot -------------------------------------------------
    async def create_user(self, username: str | None = None, *, first_name: str | None = None) -> dict:
        """A new Telegram user: {"id", "username", "first_name"}."""
        body = {key: value for key, value in (("username", username), ("first_name", first_name)) if value}
        return await self._request("POST", "/sandbox/users", body)

    async def users(self) -> list[dict]:
        return await self._request("GET", "/sandbox/users")

    async def set_member(self, handle: str, user_id: int, status: str) -> dict:
        """The user's status in the channel: creator, administrator, member or left."""
        return await self._request("PUT", f"/sandbox/channels/{handle.lstrip('@')}/members/{user_id}",
                                   {"status": status})

    async def send_message(self, user_id: int, text: str) -> dict:
        """The user writes `text` to the bot: {"update_id", "message_id"}."""
        return await self._request("POST", f"/sandbox/users/{user_id}/messages", {"text": text})

    async def messages(self, user_id: int) -> list[dict]:
        """What the bot sent the user, newest first: {"message_id", "text",
        "buttons": [{"text", "callback_data"}], "date", "edited"}."""
        return await self._request("GET", f"/sandbox/users/{user_id}/messages")

    async def press(self, user_id: int, message_id: int, data: str) -> dict:
        """The user presses the button carrying `data`: {"update_id", "callback_query_id"}."""
        return await self._request("POST", f"/sandbox/users/{user_id}/callbacks",
                                   {"message_id": message_id, "data": data})

    async def callbacks(self, user_id: int) -> list[dict]:
        """The user's presses, newest first: {"callback_query_id", "data",
        "message_id", "answered", "answer_text", ...}."""
        return await self._request("GET", f"/sandbox/users/{user_id}/callbacks")

    async def updates(self) -> dict:
        """{"pending": the updates the bot has not confirmed, "allowed_updates"}."""
        return await self._request("GET", "/sandbox/updates")

    # ---- the page ----------------------------------------------------------
    async def page(self) -> str:
        response = await self._http().get("/")
        response.raise_for_status()
        return response.text


class SandboxProcess(SandboxControl):
    """One running sandbox and its control API; `restart()` keeps its port,
    tokens, data and `env` (settings of its own on top of this process's
    environment)."""

    def __init__(self, data_dir: pathlib.Path, token: str, control_token: str, env: dict[str, str] | None = None):
        super().__init__("", control_token)
        self.data_dir = data_dir
        self.token = token
        self.env = dict(env or {})
        self.port = 0
        self.process: subprocess.Popen | None = None
        self.api_url = self.page_url = ""

    def control(self) -> SandboxControl:
        """A control client of its own (close it), e.g. for another event loop."""
        return SandboxControl(self.base_url, self.control_token)

    # ---- the process -----------------------------------------------------
    async def start(self) -> None:
        log_path = self.data_dir / "telegram-sandbox.log"
        offset = log_path.stat().st_size if log_path.exists() else 0
        env = {**os.environ, "TELEGRAM_BOT_TOKEN": self.token, "TELEGRAM_SANDBOX_CONTROL_TOKEN": self.control_token,
               "TELEGRAM_SANDBOX_HOST": "127.0.0.1", "TELEGRAM_SANDBOX_PORT": str(self.port),
               "ADTECH_DATA_DIR": str(self.data_dir),
               "PYTHONPATH": os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH")))), **self.env}
        with open(log_path, "ab") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "sandbox"], env=env, stdout=log, stderr=log)
        deadline = time.monotonic() + START_S
        while not self.page_url:
            if self.process.poll() is not None:
                raise RuntimeError(f"the sandbox exited ({self.process.returncode}): {log_path.read_text()[offset:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the sandbox did not start in {START_S} s: {log_path.read_text()[offset:]}")
            await asyncio.sleep(0.05)
            self._read_start_line(log_path.read_bytes()[offset:])
        self.base_url = self.api_url
        await self.channels()  # answers: ready

    def _read_start_line(self, text: bytes) -> None:
        for line in text.decode(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if "page_url" in record:
                self.page_url, self.api_url = record["page_url"], record["api_url"]
                self.port = int(self.api_url.rsplit(":", 1)[1])

    async def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 10.0) -> int:
        """Signals the process and waits for it: its exit code."""
        await self.aclose()
        process, self.process = self.process, None
        self.page_url = self.api_url = ""
        if process is None or process.poll() is not None:
            return process.returncode if process else 0
        process.send_signal(sig)
        deadline = time.monotonic() + timeout_s
        while process.poll() is None:
            if time.monotonic() > deadline:
                process.kill()
                process.wait()
                raise TimeoutError(f"the sandbox did not stop within {timeout_s} s of signal {sig}")
            await asyncio.sleep(0.02)
        return process.returncode

    async def restart(self) -> None:
        await self.stop()
        await self.start()


@contextlib.asynccontextmanager
async def running_sandbox(tmp_path: pathlib.Path, token: str | None = None, control_token: str | None = None,
                          *, env: dict[str, str] | None = None) -> AsyncIterator[SandboxProcess]:
    """A sandbox serving from `tmp_path` (its data and its log,
    telegram-sandbox.log) with settings `env` of its own, stopped on the way out."""
    sandbox = SandboxProcess(pathlib.Path(tmp_path), token or new_token(), control_token or secrets.token_urlsafe(32),
                             env)
    await sandbox.start()
    try:
        yield sandbox
    finally:
        await sandbox.stop()
