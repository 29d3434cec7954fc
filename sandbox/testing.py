"""The sandbox for tests: `running_sandbox(tmp_path)` starts the real server
(`python -m sandbox`, a subprocess on a free port) and yields a
`SandboxProcess` with its URLs, its token and a client of its control API.

    async with running_sandbox(tmp_path) as sandbox:
        channels = TelegramChannels(sandbox.api_url, sandbox.token)
        ...
        await sandbox.refuse("@news", "not_admin")
        assert [post["text"] for post in await sandbox.posts("@news")] == [...]
"""
import asyncio
import contextlib
import json
import os
import pathlib
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


class SandboxProcess:
    """One running sandbox; `restart()` keeps its port, token and data."""

    def __init__(self, data_dir: pathlib.Path, token: str):
        self.data_dir = data_dir
        self.token = token
        self.port = 0
        self.process: subprocess.Popen | None = None
        self.api_url = self.page_url = ""
        self._client: httpx.AsyncClient | None = None

    # ---- the process -----------------------------------------------------
    async def start(self) -> None:
        log_path = self.data_dir / "telegram-sandbox.log"
        offset = log_path.stat().st_size if log_path.exists() else 0
        env = {**os.environ, "TELEGRAM_BOT_TOKEN": self.token, "TELEGRAM_SANDBOX_HOST": "127.0.0.1",
               "TELEGRAM_SANDBOX_PORT": str(self.port), "ADTECH_DATA_DIR": str(self.data_dir),
               "PYTHONPATH": os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH"))))}
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
        self._client = httpx.AsyncClient(base_url=self.api_url, timeout=10.0)
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
        if self._client:
            await self._client.aclose()
            self._client = None
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

    # ---- the control API ---------------------------------------------------
    async def _request(self, method: str, path: str, body: dict | None = None):
        response = await self._client.request(method, path, json=body)
        response.raise_for_status()
        return response.json()

    async def channels(self) -> list[dict]:
        return await self._request("GET", "/sandbox/channels")

    async def posts(self, handle: str) -> list[dict]:
        """The channel's posts, newest first."""
        return await self._request("GET", f"/sandbox/channels/{handle.lstrip('@')}/posts")

    async def delete(self, handle: str, message_id: int) -> None:
        await self._request("DELETE", f"/sandbox/channels/{handle.lstrip('@')}/posts/{message_id}")

    async def refuse(self, handle: str, mode: str) -> None:
        """mode: not_found, not_admin, blocked or off."""
        await self._request("POST", f"/sandbox/channels/{handle.lstrip('@')}/refuse", {"mode": mode})

    async def fault(self, method: str, kind: str, count: int = 1, *, retry_after: int = 5,
                    stall_s: float = 30.0) -> None:
        """The next `count` calls of `method` fail: kind 429, 500, 502 or stall_after_post."""
        await self._request("POST", "/sandbox/faults", {"method": method, "kind": kind, "count": count,
                                                        "retry_after": retry_after, "stall_s": stall_s})

    async def reset(self) -> None:
        await self._request("POST", "/sandbox/reset")

    async def page(self) -> str:
        response = await self._client.get("/")
        response.raise_for_status()
        return response.text


@contextlib.asynccontextmanager
async def running_sandbox(tmp_path: pathlib.Path, token: str | None = None) -> AsyncIterator[SandboxProcess]:
    """A sandbox serving from `tmp_path` (its data and its log,
    telegram-sandbox.log), stopped on the way out."""
    sandbox = SandboxProcess(pathlib.Path(tmp_path), token or new_token())
    await sandbox.start()
    try:
        yield sandbox
    finally:
        await sandbox.stop()
