"""The embedded PostgreSQL's reaper: a process `adtech run` starts next to
the database, which waits for the supervisor to go away (its pipe closes
however the supervisor ended, SIGKILL included) and then stops the server
if it still runs. A supervisor that stops normally stops the server itself;
the reaper then finds nothing to do.

Run as `python -m operations.reaper <data dir>` with the supervisor's pipe
on stdin; it writes "armed" to stdout once it holds the installation's
reaper lock."""
import fcntl
import os
import pathlib
import signal
import sys
import time

STOP_WITHIN_S = 15.0


def pid_in(lock_file: pathlib.Path) -> int | None:
    """The pid a PostgreSQL lock file names (postmaster.pid, a socket's
    lock; initdb's bootstrap writes it negated), or None."""
    try:
        return abs(int(lock_file.read_text().split()[0]))
    except (OSError, ValueError, IndexError):
        return None


def serves(pid: int | None, pgdata: pathlib.Path) -> bool:
    """Whether `pid` is a live (not zombie) postgres of this data directory."""
    if pid is None or not alive(pid):
        return False
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return str(pgdata).encode() in cmdline.read()
    except OSError:
        return True  # no /proc to look at: trust the pid file


def stop_server(pgdata: pathlib.Path) -> None:
    """Fast shutdown of the running postmaster (SIGINT), SIGKILL if it has
    not ended within STOP_WITHIN_S. Signals only the pid it read: a server
    started later in the same directory is never touched, and no helper
    process is left to outlive us."""
    pid = pid_in(pgdata / "postmaster.pid")
    if not serves(pid, pgdata):
        return
    try:
        os.kill(pid, signal.SIGINT)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + STOP_WITHIN_S
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if alive(pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def alive(pid: int) -> bool:
    """Whether process `pid` runs (one of another user's counts; a zombie,
    whose parent has not reaped it yet, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def main() -> None:
    # The supervisor's own signals are not for us: only its end is.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    data_dir = pathlib.Path(sys.argv[1])
    # One reaper per installation at a time: a reaper of a crashed run that
    # is still stopping its server keeps the next run from starting one.
    with open(data_dir / ".reaper.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        os.write(1, b"armed\n")
        while os.read(0, 4096):  # nothing is ever written: EOF is the supervisor gone
            pass
        stop_server(data_dir / "pg")


if __name__ == "__main__":
    main()
