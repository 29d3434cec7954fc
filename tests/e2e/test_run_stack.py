"""`adtech run` as a real process: the stack comes up ready, a stopped
service shows as 503 naming it, and stopping the supervisor leaves no
process behind (children, embedded database); on the README's `*_PORT`
variables the other commands reach it; busy ports are all named and nothing
starts."""
import importlib.util
import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid

import httpx
import psutil
import pytest

from tests.harness import free_port

ROOT = pathlib.Path(__file__).resolve().parents[2]
ENTRY_POINTS = ["services.campaigns.main", "services.moderation.main", "services.payments.main", "gateway.main"]
GRACE_S = 10.0

missing = [m for m in ENTRY_POINTS if importlib.util.find_spec(m) is None]
pytestmark = [
    pytest.mark.skipif(bool(missing), reason=f"entry points not written yet: {missing}"),
    pytest.mark.skipif(bool(os.environ.get("BASE_URL")), reason="BASE_URL given: the suite runs against an external stack"),
]


def operator_env(data_dir: pathlib.Path) -> dict[str, str]:
    """The environment of an installation in `data_dir`: its secrets
    generated there, no service address set."""
    env = {**os.environ, "ADTECH_DATA_DIR": str(data_dir), "ADTECH_STOP_GRACE_SECONDS": str(GRACE_S),
           "LOG_LEVEL": "WARNING", "TELEGRAM_SANDBOX_PORT": str(free_port())}
    for name in ("ADTECH_JWT_SECRET", "ADTECH_INTERNAL_TOKEN", "CAMPAIGNS_ADDR", "MODERATION_ADDR", "PAYMENTS_ADDR",
                 "TELEGRAM_BOT_TOKEN"):
        env.pop(name, None)
    return env


def adtech(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "operations", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


class Stack:
    """`adtech run` on free ports in a data dir of its own, its output kept;
    the ports given as `--<name>-port`, or as the README's `*_PORT` variables."""

    def __init__(self, data_dir: pathlib.Path, *, port_variables: bool = False, replicas: int = 1):
        # replica i of a service listens on its port + i: room for them
        self.ports = {name: free_port(replicas) for name in ("campaigns", "moderation", "payments")}
        self.ports["gateway"] = free_port()
        self.data_dir = data_dir
        env = {**operator_env(data_dir), "ADTECH_REPLICAS": str(replicas)}
        if env.get("DATABASE_URL"):  # a shared server: databases of our own on it
            suffix = uuid.uuid4().hex[:8]
            env.update({f"{c.upper()}_DATABASE": f"adtech_{c}_run{suffix}" for c in ("campaigns", "moderation", "payments")})
        self.embedded = not env.get("DATABASE_URL")
        if port_variables:
            env.update({f"{name.upper()}_PORT": str(port) for name, port in self.ports.items()})
            args = []
        else:
            args = [arg for name, port in self.ports.items() for arg in (f"--{name}-port", str(port))]
        self.env = env
        self.proc = subprocess.Popen([sys.executable, "-m", "operations", "run", *args], cwd=ROOT, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        self.lines: list[str] = []
        threading.Thread(target=lambda: self.lines.extend(self.proc.stdout), daemon=True).start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['gateway']}"

    @property
    def ready_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['gateway']}/api/health/ready"

    def output(self) -> str:
        return "".join(self.lines[:12] + ["...\n"] + self.lines[-40:])

    def child_pids(self) -> dict[str, int]:
        found = (re.search(r"\[supervisor\] started ([\w-]+) \(pid (\d+)\)", line) for line in list(self.lines))
        return {m.group(1): int(m.group(2)) for m in found if m}

    def database_pid(self) -> int | None:
        """The server's pid from its lock file, which initdb's bootstrap
        backend holds with its pid negated (a cleanup during initdb must not
        hide why the test failed)."""
        path = self.data_dir / "pg" / "postmaster.pid"
        return abs(int(path.read_text().split()[0])) if path.exists() else None

    def wait_ready_status(self, status: int, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"adtech run exited {self.proc.returncode}:\n{self.output()}"
            try:
                reply = httpx.get(self.ready_url, timeout=2.0)
                last = (reply.status_code, reply.text)
                if reply.status_code == status:
                    return reply.json()
            except httpx.HTTPError as error:
                last = repr(error)
            time.sleep(0.2)
        raise AssertionError(f"no {status} from {self.ready_url} within {timeout}s (last: {last}):\n{self.output()}")

    def wait_for_output(self, text: str, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while text not in "".join(self.lines):
            assert time.monotonic() < deadline, f"no {text!r} in the output:\n{self.output()}"
            time.sleep(0.1)

    def kill_leftovers(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(GRACE_S + 5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        for pid in [*self.child_pids().values(), self.database_pid()]:
            if pid and alive(pid):
                os.kill(pid, signal.SIGKILL if pid != self.database_pid() else signal.SIGINT)


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_run_serves_ready_reports_a_stopped_service_and_stops_without_orphans(tmp_path_factory):
    stack = Stack(tmp_path_factory.mktemp("run"))
    try:
        body = stack.wait_ready_status(200, timeout=30)
        assert body["services"] == {"campaigns": "SERVING", "moderation": "SERVING", "payments": "SERVING"}
        stack.wait_for_output(f"[supervisor] ready: API http://127.0.0.1:{stack.ports['gateway']}/api")
        stack.wait_for_output(f"[supervisor] console: http://127.0.0.1:{stack.ports['gateway']}/console")
        stack.wait_for_output("[supervisor] telegram: posts go to the local Bot API sandbox; its page: http://127.0.0.1:")
        pids = stack.child_pids()
        assert set(pids) == {"campaigns", "moderation", "payments", "publisher", "bot", "gateway", "telegram-sandbox"}
        database = stack.database_pid()
        assert database is None or not stack.embedded or alive(database)

        os.kill(pids["payments"], signal.SIGTERM)
        body = stack.wait_ready_status(503, timeout=10)
        assert body["services"]["payments"] != "SERVING"
        assert body["services"]["campaigns"] == "SERVING"
        stack.wait_for_output("[supervisor] payments exited unexpectedly")

        stack.proc.send_signal(signal.SIGTERM)
        assert stack.proc.wait(timeout=GRACE_S + 5) == 0, stack.output()
        leftovers = [name for name, pid in pids.items() if alive(pid)]
        if stack.embedded:
            leftovers += ["database"] if alive(database) else []
        assert leftovers == [], stack.output()
        assert "[supervisor] stopped" in stack.output()
        everything = "".join(stack.lines)  # a clean stop says nothing alarming after it
        assert "Traceback" not in everything and "Failed postgres command" not in everything, stack.output()
    finally:
        stack.kill_leftovers()


def test_commands_with_the_readme_port_variables_reach_the_stack_adtech_run_started(tmp_path_factory):
    stack = Stack(tmp_path_factory.mktemp("ports"), port_variables=True)
    try:
        body = stack.wait_ready_status(200, timeout=30)
        assert body["services"] == {"campaigns": "SERVING", "moderation": "SERVING", "payments": "SERVING"}
        stack.wait_for_output(f"[supervisor] ready: API http://127.0.0.1:{stack.ports['gateway']}/api")

        stats = adtech(stack.env, "outbox", "stats")
        assert stats.returncode == 0, stats.stderr
        assert [line.split(":")[0] for line in stats.stdout.splitlines()] == ["campaigns", "moderation"]
        verified = adtech(stack.env, "verify")
        assert (verified.returncode, verified.stderr.strip()) == (0, "all checks passed"), verified.stdout + verified.stderr
    finally:
        stack.kill_leftovers()


def processes_of(data_dir: pathlib.Path) -> list[str]:
    """Running processes that belong to the installation in `data_dir`
    (started with it in their command line or environment)."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "environ"]):
        mentions = [*(proc.info["cmdline"] or []), *(proc.info["environ"] or {}).values()]
        if proc.pid != os.getpid() and any(str(data_dir) in part for part in mentions) and alive(proc.pid):
            found.append(f"{proc.pid}: {' '.join(proc.info['cmdline'] or [])}")
    return found


def test_run_names_every_busy_port_with_its_variable_and_starts_nothing(tmp_path):
    ports = {name: free_port() for name in ("campaigns", "moderation", "payments")}
    with socket.socket() as gateway, socket.socket() as moderation:
        for listener in (gateway, moderation):
            listener.bind(("127.0.0.1", 0))
            listener.listen()
        ports.update(gateway=gateway.getsockname()[1], moderation=moderation.getsockname()[1])
        env = {**operator_env(tmp_path), **{f"{name.upper()}_PORT": str(port) for name, port in ports.items()}}

        done = adtech(env, "run")

        assert done.returncode == 1
        assert done.stderr.splitlines() == [
            f"cannot start: port {ports['moderation']} (MODERATION_PORT) is in use; set MODERATION_PORT to a free port",
            f"cannot start: port {ports['gateway']} (GATEWAY_PORT) is in use; set GATEWAY_PORT to a free port"]
    assert not (tmp_path / "pg").exists()
    assert processes_of(tmp_path) == []


@pytest.fixture(scope="module")
def running_stack(tmp_path_factory):
    stack = Stack(tmp_path_factory.mktemp("running"))
    try:
        stack.wait_ready_status(200, timeout=30)
        yield stack
    finally:
        stack.kill_leftovers()


def test_second_run_in_the_same_data_dir_fails_at_once_naming_the_running_one(running_stack):
    stack = running_stack
    other_ports = {name: free_port() for name in ("gateway", "campaigns", "moderation", "payments")}
    env = {**operator_env(stack.data_dir), **{f"{name.upper()}_PORT": str(port) for name, port in other_ports.items()}}

    started = time.monotonic()
    done = adtech(env, "run")

    assert time.monotonic() - started < 10, done.stderr  # not the reaper's 30 s
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith(f"cannot start: `adtech run` already runs on this installation ({stack.data_dir}): "
                               f"pid {stack.proc.pid}, gateway {stack.ports['gateway']}, ")
    for name in ("campaigns", "moderation", "payments"):
        assert f"{name} {stack.ports[name]}" in lines[0]
    assert stack.proc.poll() is None and httpx.get(stack.ready_url, timeout=5).status_code == 200


def test_command_of_another_installation_is_told_the_service_refused_its_credential(running_stack, tmp_path):
    stack = running_stack
    env = {**operator_env(tmp_path), **{f"{name.upper()}_PORT": str(port) for name, port in stack.ports.items()}}

    done = adtech(env, "outbox", "stats", "--service", "campaigns")

    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"error: campaigns: a service answered on 127.0.0.1:{stack.ports['campaigns']} but refused this "
        "installation's credential: another `make run` on this port?"]


def test_each_running_process_holds_only_the_secrets_it_uses(running_stack):
    secrets = {"ADTECH_JWT_SECRET", "ADTECH_INTERNAL_TOKEN", "TELEGRAM_BOT_TOKEN", "TELEGRAM_SANDBOX_CONTROL_TOKEN"}
    held = {name: secrets & {key.upper() for key in psutil.Process(pid).environ()}
            for name, pid in running_stack.child_pids().items()}
    assert held == {
        "gateway": {"ADTECH_JWT_SECRET", "ADTECH_INTERNAL_TOKEN"},
        "campaigns": {"ADTECH_INTERNAL_TOKEN", "TELEGRAM_BOT_TOKEN"},
        "moderation": {"ADTECH_INTERNAL_TOKEN"}, "payments": {"ADTECH_INTERNAL_TOKEN"},
        "publisher": {"TELEGRAM_BOT_TOKEN"}, "bot": {"TELEGRAM_BOT_TOKEN"},
        "telegram-sandbox": {"TELEGRAM_BOT_TOKEN", "TELEGRAM_SANDBOX_CONTROL_TOKEN"}}
