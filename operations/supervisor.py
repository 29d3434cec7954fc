"""The process supervisor behind `adtech run`: starts each process of the
stack as a separate child, merges their output into one log with a
`[name] ` prefix per line, reports a child that dies on its own, and stops
them all (SIGTERM, a grace period, then SIGKILL) leaving no orphans.

Children run in their own session, so Ctrl-C reaches only the supervisor,
which then stops them in order (gateway first, payments last). Each child
also asks the kernel to SIGTERM it if the supervisor itself dies
(PR_SET_PDEATHSIG), so even a killed supervisor leaves nothing behind."""
import dataclasses
import os
import runpy
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable

from operations.installation import AlreadyRunning, claim
from operations.settings import CONTEXTS, CONTROL_TOKEN, reachable_host

PR_SET_PDEATHSIG = 1


@dataclasses.dataclass
class Child:
    name: str
    module: str  # run as `python -m <module>`
    stage: int = 0  # stop order: lower stages stop first
    env: dict[str, str] = dataclasses.field(default_factory=dict)  # on top of the shared environment
    proc: subprocess.Popen | None = None


class StopRequest:
    """A stop asked for by SIGINT/SIGTERM. Set from a signal handler, so it
    is a plain attribute write: threading.Event.set would take the Event's
    lock, which the main thread may hold inside Event.wait when the signal
    arrives, and the process would hang there for good."""

    def __init__(self):
        self.requested = False

    def set(self) -> None:
        self.requested = True

    def is_set(self) -> bool:
        return self.requested

    def wait(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self.requested and (left := deadline - time.monotonic()) > 0:
            time.sleep(min(0.05, left))
        return self.requested


class BusyPort(Exception):
    """Ports the stack needs are already taken; one line per port names it
    and the setting that moves it."""


def check_ports_free(ports: Iterable[tuple[str, str, int]]) -> None:
    """Raises BusyPort naming every (setting, host, port) already listened on."""
    busy = [f"port {port} ({setting}) is in use; set {setting} to a free port"
            for setting, host, port in ports if listened_on(host, port)]
    if busy:
        raise BusyPort("\n".join(busy))


def listened_on(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # SO_REUSEADDR: a port in TIME_WAIT after a restart is not busy; only a listener is.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


class Supervisor:
    def __init__(self, children: list[Child], env: dict[str, str], *, grace: float = 10.0,
                 write: Callable[[str], None] | None = None):
        self.children = children
        self.env = env
        self.grace = grace
        self.stopping = False
        self._lock = threading.Lock()
        self._write = write
        self._threads: list[threading.Thread] = []

    def _emit(self, lines: list[str]) -> None:
        """Writes whole lines under one lock (and, to stdout, one flush), so
        lines of different processes never interleave mid-line."""
        with self._lock:
            if self._write is not None:
                for line in lines:
                    self._write(line)
            else:
                sys.stdout.write("\n".join(lines) + "\n")
                sys.stdout.flush()

    def say(self, name: str, text: str) -> None:
        self._emit([f"[{name}] {text}"])

    def start(self) -> None:
        for child in self.children:
            child.proc = subprocess.Popen(
                [sys.executable, "-m", "operations.supervisor", child.module], env=self.env_of(child),
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, bufsize=0)
            self.say("supervisor", f"started {child.name} (pid {child.proc.pid})")
            for target in (self._pump, self._watch):
                thread = threading.Thread(target=target, args=(child,), daemon=True)
                thread.start()
                self._threads.append(thread)

    def env_of(self, child: Child) -> dict[str, str]:
        """The whole environment `child` starts with."""
        return {**self.env, "ADTECH_SUPERVISOR_PID": str(os.getpid()), "PYTHONUNBUFFERED": "1", **child.env}

    def _pump(self, child: Child) -> None:
        """Copies a child's output a chunk at a time (whatever is ready, up
        to 64 KiB), each complete line prefixed with its process name: a busy
        child costs one read and one write per chunk, not per line."""
        prefix, pending = f"[{child.name}] ", b""
        fd = child.proc.stdout.fileno()
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                break
            *complete, pending = (pending + chunk).split(b"\n")
            if complete:
                self._emit([prefix + line.decode(errors="replace") for line in complete])
        if pending:
            self._emit([prefix + pending.decode(errors="replace")])

    def _watch(self, child: Child) -> None:
        code = child.proc.wait()
        if not self.stopping:
            self.say("supervisor", f"{child.name} exited unexpectedly with code {code}; the others keep running")

    def alive(self) -> list[str]:
        return [c.name for c in self.children if c.proc is not None and c.proc.poll() is None]

    def pids(self) -> list[int]:
        return [c.proc.pid for c in self.children if c.proc is not None]

    def stop(self) -> None:
        """SIGTERM stage by stage within one grace period, then SIGKILL what is left."""
        self.stopping = True
        deadline = time.monotonic() + self.grace
        for stage in sorted({c.stage for c in self.children}):
            group = [c for c in self.children if c.stage == stage and c.proc is not None]
            for child in group:
                if child.proc.poll() is None:
                    self.say("supervisor", f"stopping {child.name}")
                    child.proc.send_signal(signal.SIGTERM)
            for child in group:
                try:
                    child.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    pass
        for child in self.children:
            if child.proc is not None and child.proc.poll() is None:
                self.say("supervisor", f"{child.name} did not stop within {self.grace:g}s; killing it")
                child.proc.kill()
                child.proc.wait()
        for thread in self._threads:
            thread.join(timeout=1.0)


# What `adtech run` starts; stage = stop order (the gateway stops taking
# requests first, payments, which the relays call, stops last).
# The publisher worker and the bot (which talks with users through the Bot
# API) run one process per replica, like the services; the Bot API sandbox
# runs only when no TELEGRAM_BOT_TOKEN is set, and stops last.
STACK = [Child("payments", "services.payments.main", stage=2),
         Child("campaigns", "services.campaigns.main", stage=1),
         Child("moderation", "services.moderation.main", stage=1),
         Child("publisher", "services.campaigns.publisher", stage=1),
         Child("bot", "services.campaigns.bot", stage=1),
         Child("gateway", "gateway.main", stage=0)]
SANDBOX = Child("telegram-sandbox", "sandbox", stage=3)
REPLICATED = (*CONTEXTS, "publisher", "bot")
JWT_SECRET, INTERNAL_TOKEN, BOT_TOKEN = "ADTECH_JWT_SECRET", "ADTECH_INTERNAL_TOKEN", "TELEGRAM_BOT_TOKEN"
SECRETS = (JWT_SECRET, INTERNAL_TOKEN, BOT_TOKEN, CONTROL_TOKEN)
# The secrets each process's Settings reads, and nothing else reaches it: the
# gateway signs nothing but checks user tokens and calls services; services
# check the internal credential and call each other; the publisher and the bot
# only talk to Telegram and the database; the sandbox is Telegram.
SECRETS_OF = {"gateway": (JWT_SECRET, INTERNAL_TOKEN),
              "payments": (INTERNAL_TOKEN,), "moderation": (INTERNAL_TOKEN,),
              "campaigns": (INTERNAL_TOKEN, BOT_TOKEN),
              "publisher": (BOT_TOKEN,), "bot": (BOT_TOKEN,),
              SANDBOX.name: (BOT_TOKEN, CONTROL_TOKEN)}
READY_WITHIN_S = 30.0


def run_stack(settings, port_flags: Iterable[str] = ()) -> int:
    """`adtech run`: database, secrets, migrations, then every process until
    SIGINT/SIGTERM; then every child and the embedded database stop.
    `port_flags`: the processes whose port was given as `--<name>-port`."""
    stop = StopRequest()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    say = lambda text: print(f"[supervisor] {text}", flush=True)  # noqa: E731
    # Before the ports: a second run of this installation is named as such.
    installation = claim(settings.data_dir(), run_ports(settings))
    try:
        return _run_claimed(settings, port_flags, stop, say)
    finally:
        installation.close()


def _run_claimed(settings, port_flags: Iterable[str], stop: StopRequest, say: Callable[[str], None]) -> int:
    from operations.database import database_server, migrate

    check_ports_free(stack_ports(settings, port_flags))  # before anything starts: every busy port is named
    embedded = not settings.database_url
    children = stack_children(settings)
    reaper = start_reaper(settings.data_dir()) if embedded else None
    supervisor = None
    try:
        server = database_server(settings, stop_at_exit=False)  # stop_embedded and the reaper stop it
        say("database: " + ("embedded PostgreSQL under " + str(settings.data_dir() / "pg") if embedded
                            else "DATABASE_URL"))
        migrate(settings, server, say=say)
        supervisor = Supervisor(children, child_env(settings, server),
                                grace=settings.adtech_stop_grace_seconds)
        if not stop.is_set():
            supervisor.start()
            if wait_ready(settings, stop, supervisor):
                for line in banner(settings):
                    say(line)
            while not stop.wait(0.5):
                if not supervisor.alive():
                    say("every process has exited; stopping")
                    return 1
        say("stopping")
        return 0
    finally:
        if supervisor is not None:
            supervisor.stop()
        if embedded:
            stop_embedded(settings.data_dir())
            say("database stopped")
        if reaper is not None:
            reaper.stdin.close()  # it finds the server stopped, and exits
            try:
                reaper.wait(timeout=30)
            except subprocess.TimeoutExpired:
                reaper.kill()
        say("stopped")


def stack_children(settings) -> list[Child]:
    """STACK, with ADTECH_REPLICAS processes of each service: replica i
    (named `<service>-<i+1>` when there are several) on `*_PORT` + i; each
    child carries the secrets it uses (SECRETS_OF), resolved here, so a
    placeholder stops the command before anything starts."""
    secrets = stack_secrets(settings)
    children = [dataclasses.replace(SANDBOX)] if uses_sandbox(settings) else []
    for child in STACK:
        if child.name not in REPLICATED or settings.adtech_replicas == 1:
            children.append(dataclasses.replace(child))
            continue
        children += [dataclasses.replace(child, name=f"{child.name}-{replica + 1}", env=(
                         {f"{child.name.upper()}_PORT": str(getattr(settings, f"{child.name}_port") + replica)}
                         if child.name in CONTEXTS else {}))
                     for replica in range(settings.adtech_replicas)]
    for child in children:
        base = child.name if child.name in SECRETS_OF else child.name.rsplit("-", 1)[0]
        child.env = {**{name: secrets[name] for name in SECRETS_OF[base]}, **child.env}
    return children


def stack_secrets(settings) -> dict[str, str]:
    """Every secret of the stack: given, else generated into the data directory."""
    secrets = {JWT_SECRET: settings.jwt_secret(), INTERNAL_TOKEN: settings.internal_token()}
    if uses_sandbox(settings):
        secrets.update({BOT_TOKEN: settings.sandbox_token(), CONTROL_TOKEN: settings.sandbox_control_token()})
    else:
        secrets[BOT_TOKEN] = settings.telegram_bot_token
    return secrets


def uses_sandbox(settings) -> bool:
    """Without a bot token, the stack posts to the local Bot API sandbox."""
    return not settings.telegram_bot_token


def sandbox_url(settings) -> str:
    return f"http://127.0.0.1:{settings.telegram_sandbox_port}"


def run_ports(settings) -> dict[str, int]:
    """Each process's (first) port, as the run lock records them."""
    ports = {"gateway": settings.gateway_port, **{name: getattr(settings, f"{name}_port") for name in CONTEXTS}}
    if uses_sandbox(settings):
        ports[SANDBOX.name] = settings.telegram_sandbox_port
    return ports


def stack_ports(settings, port_flags: Iterable[str] = ()) -> list[tuple[str, str, int]]:
    """(setting that moves it, host, port) of every listener of the stack:
    `--<name>-port` for a port given on the command line, else `<NAME>_PORT`
    (its replicas listen on the ports after it)."""
    ports = [(name, settings.grpc_host, getattr(settings, f"{name}_port") + replica)
             for name in CONTEXTS for replica in range(settings.adtech_replicas)]
    ports.append(("gateway", settings.gateway_host, settings.gateway_port))
    if uses_sandbox(settings):
        ports.append(("telegram_sandbox", "127.0.0.1", settings.telegram_sandbox_port))
    return [(f"--{name}-port" if name in port_flags else f"{name.upper()}_PORT", host, port) for name, host, port in ports]


def child_env(settings, server: str) -> dict[str, str]:
    """The environment every child shares: ours without any secret (settings
    are read case-insensitively, so any spelling), plus what the supervisor
    decided; each child's secrets are in its Child.env. Peers are reached
    where every `adtech` command reaches them."""
    secret = {name.lower() for name in SECRETS}
    env = {name: value for name, value in os.environ.items() if name.lower() not in secret}
    env.update({
        "DATABASE_URL": server, "ADTECH_DATA_DIR": str(settings.data_dir()),
        "GATEWAY_HOST": settings.gateway_host, "GATEWAY_PORT": str(settings.gateway_port),
    })
    if uses_sandbox(settings):
        env.update({"TELEGRAM_API_URL": sandbox_url(settings),
                    "TELEGRAM_SANDBOX_HOST": "127.0.0.1", "TELEGRAM_SANDBOX_PORT": str(settings.telegram_sandbox_port)})
    for context in CONTEXTS:
        env[f"{context.upper()}_PORT"] = str(getattr(settings, f"{context}_port"))
        env[f"{context.upper()}_ADDR"] = settings.service_address(context)
        env[f"{context.upper()}_DATABASE"] = getattr(settings, f"{context}_database")
    return env


def api_url(settings) -> str:
    return f"http://{reachable_host(settings.gateway_host)}:{settings.gateway_port}/api"


def wait_ready(settings, stop: StopRequest, supervisor: Supervisor) -> bool:
    """Polls the gateway's readiness until 200, a stop, or READY_WITHIN_S."""
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + READY_WITHIN_S
    while not stop.is_set() and time.monotonic() < deadline and supervisor.alive():
        try:
            with urllib.request.urlopen(api_url(settings) + "/health/ready", timeout=1.0) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        stop.wait(0.2)
    if not stop.is_set():
        supervisor.say("supervisor", f"not ready within {READY_WITHIN_S:g}s; still running: {', '.join(supervisor.alive())}")
    return False


def banner(settings) -> list[str]:
    url = api_url(settings)
    return [f"ready: API {url}", f"docs: {url}/docs", f"console: {url.removesuffix('/api')}/console (paste an admin token)",
            "token: .venv/bin/adtech token --role admin   (or: make token ROLE=advertiser)",
            f"try: curl -H \"Authorization: Bearer $(.venv/bin/adtech token --role admin 2>/dev/null)\" {url}/channels",
            *([f"telegram: posts go to the local Bot API sandbox; its page: {sandbox_url(settings)}/",
               f"telegram: the sandbox's control API (docs/sandbox.md) takes the bearer token in "
               f"{settings.sandbox_control_token_source()}"]
              if uses_sandbox(settings) else ["telegram: posts go to the Bot API at TELEGRAM_API_URL"]),
            "Ctrl-C stops everything"]


def stop_embedded(data_dir) -> None:
    """Stops the embedded server (fast shutdown; SIGKILL if it will not)."""
    from operations.reaper import stop_server

    stop_server((data_dir / "pg").resolve())


REAPER_ARMED_WITHIN_S = 30.0


def start_reaper(data_dir) -> subprocess.Popen:
    """The process that stops the embedded server once this one is gone,
    however it ends (operations/reaper.py). Started before the server, in
    its own session, so no signal meant for the stack reaches it; returns
    once it is armed (a reaper left by a crash has finished stopping its
    server by then)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    reaper = subprocess.Popen([sys.executable, "-m", "operations.reaper", str(data_dir.resolve())],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True)
    ready = select.select([reaper.stdout], [], [], REAPER_ARMED_WITHIN_S)[0]
    if not ready or reaper.stdout.readline() != b"armed\n":
        reaper.kill()
        reaper.wait()
        raise AlreadyRunning(f"the database of an earlier run in {data_dir} is still stopping (its reaper holds "
                             f"{data_dir / '.reaper.lock'} after {REAPER_ARMED_WITHIN_S:g}s); try again shortly")
    return reaper


def _die_with_parent() -> None:
    """Linux only: the kernel sends SIGTERM when the supervisor goes away."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        return
    if str(os.getppid()) != os.environ.get("ADTECH_SUPERVISOR_PID", str(os.getppid())):
        sys.exit(1)  # the supervisor died before prctl took effect


if __name__ == "__main__":
    # `python -m operations.supervisor <module>`: the child side of a supervised process.
    _die_with_parent()
    target = sys.argv[1]
    sys.argv = [target, *sys.argv[2:]]
    runpy.run_module(target, run_name="__main__", alter_sys=True)
