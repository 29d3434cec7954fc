"""One `adtech run` per installation (data directory) at a time: the
running one holds a lock on `<data dir>/.run.lock` for its whole life, with
its pid and ports written in the file, so a second run is told at once who
runs there instead of waiting for the database reaper."""
import fcntl
import os
import pathlib
from typing import IO

LOCK_FILE = ".run.lock"


class AlreadyRunning(Exception):
    """Another `adtech run` holds this installation; the line names it."""


def claim(data_dir: pathlib.Path, ports: dict[str, int]) -> IO[str]:
    """Takes the installation's run lock and records this process's pid and
    `ports` (name: port) in it; raises AlreadyRunning naming the holder.
    The lock lasts until the returned file is closed or this process ends,
    however it ends."""
    data_dir.mkdir(parents=True, exist_ok=True)
    lock = open(data_dir / LOCK_FILE, "a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        holder = lock.read().strip() or "pid unknown"
        lock.close()
        raise AlreadyRunning(
            f"`adtech run` already runs on this installation ({data_dir}): {holder}; "
            "stop it first, or set ADTECH_DATA_DIR to another directory") from None
    lock.seek(0)
    lock.truncate()
    lock.write(f"pid {os.getpid()}, " + ", ".join(f"{name} {port}" for name, port in ports.items()) + "\n")
    lock.flush()
    return lock
