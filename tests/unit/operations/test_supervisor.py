"""The supervisor behind `adtech run`, with small real child processes:
prefixed output, a child dying on its own is reported, and stop leaves
nothing running even when a child ignores SIGTERM."""
import os
import pathlib
import time

import psutil

from operations.supervisor import Child, Supervisor

ROOT = pathlib.Path(__file__).resolve().parents[3]
MODULE = "tests.unit.operations.supervised_child"


def supervisor_of(behaviours: dict[str, str], grace: float = 2.0) -> tuple[Supervisor, list[str]]:
    lines: list[str] = []
    children = [Child(name, MODULE, env={"SUPERVISED_BEHAVIOUR": behaviour}) for name, behaviour in behaviours.items()]
    supervisor = Supervisor(children, {**os.environ, "PYTHONPATH": str(ROOT)}, grace=grace, write=lines.append)
    supervisor.start()
    return supervisor, lines


def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met"
        time.sleep(0.05)


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_each_output_line_carries_its_process_name():
    supervisor, lines = supervisor_of({"alpha": "polite", "beta": "polite"})
    try:
        wait_for(lambda: {"[alpha] hello from polite", "[beta] hello from polite"} <= set(lines))
    finally:
        supervisor.stop()


def test_a_child_dying_on_its_own_is_reported_and_the_others_keep_running():
    supervisor, lines = supervisor_of({"crasher": "crash", "steady": "polite"})
    try:
        wait_for(lambda: "[supervisor] crasher exited unexpectedly with code 3; the others keep running" in lines)
        assert supervisor.alive() == ["steady"]
    finally:
        supervisor.stop()


def test_stop_kills_a_child_that_ignores_sigterm_after_the_grace_period():
    supervisor, lines = supervisor_of({"stubborn": "stubborn", "polite": "polite"}, grace=1.0)
    wait_for(lambda: len([line for line in lines if "hello" in line]) == 2)
    started = time.monotonic()
    supervisor.stop()
    assert time.monotonic() - started < 3.0
    assert all(gone(pid) for pid in supervisor.pids())
    assert "[supervisor] stubborn did not stop within 1s; killing it" in lines
    assert not any("exited unexpectedly" in line for line in lines)
