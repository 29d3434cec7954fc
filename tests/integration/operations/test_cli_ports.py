"""`adtech` as the README's user runs it on non-default ports: only the
`*_PORT` variables set, it reaches the services on those ports; a service
that is stopped is one line naming it, its address and what to check, with
no traceback and a non-zero exit."""
import asyncio
import os
import sys

import pytest

from tests import harness
from tests.stack import Stack

CONTEXTS = ("campaigns", "moderation", "payments")


@pytest.fixture(scope="module")
async def stack(pg_server, data_dir):
    """The three services on free (so non-default) ports."""
    running = await Stack(pg_server, data_dir).start()
    yield running
    await running.close()


def port_env(stack: Stack, data_dir) -> dict[str, str]:
    """The operator's environment: this installation's credential and the
    port variables, no address."""
    env = {name: value for name, value in os.environ.items()
           if not name.endswith(("_ADDR", "_PORT")) and name not in ("GRPC_HOST", "DATABASE_URL")}
    env.update({"ADTECH_INTERNAL_TOKEN": harness.INTERNAL_TOKEN, "ADTECH_DATA_DIR": str(data_dir)})
    env.update({f"{ctx.upper()}_PORT": str(stack.ports[ctx]) for ctx in CONTEXTS})
    return env


async def adtech(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    # A child process, awaited without blocking: the services answer from this event loop.
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "operations", *args, env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    return proc.returncode, out.decode(), err.decode()


async def test_commands_reach_the_services_on_their_port_variables(stack, data_dir):
    env = port_env(stack, data_dir)

    code, out, err = await adtech(env, "outbox", "stats")
    assert code == 0, err
    assert [line.split(":")[0] for line in out.splitlines()] == ["campaigns", "moderation"]

    code, out, err = await adtech(env, "payments", "reconcile")
    assert code == 0, err

    code, out, err = await adtech(env, "verify")
    assert (code, err.strip()) == (0, "all checks passed"), out + err


@pytest.fixture
async def moderation_stopped(stack):
    """Moderation down, its port closed; started again on it afterwards."""
    await stack.stop_service("moderation")
    yield f"127.0.0.1:{stack.ports['moderation']}"
    await stack.start_service("moderation")


@pytest.mark.parametrize("command", [["verify"], ["outbox", "stats"]])
async def test_a_stopped_service_is_one_line_naming_it_and_its_port_variable(stack, data_dir, moderation_stopped, command):
    code, _, err = await adtech(port_env(stack, data_dir), *command)

    assert code == 1
    assert err.splitlines() == [f"error: moderation at {moderation_stopped}: UNAVAILABLE (not answering): "
                                "is `make run` running with the same MODERATION_PORT?"]


@pytest.mark.parametrize("command", [["verify"], ["outbox", "stats"]])
async def test_a_stopped_service_set_by_its_address_names_that_variable(stack, data_dir, moderation_stopped, command):
    env = {**port_env(stack, data_dir), "MODERATION_ADDR": moderation_stopped}

    code, _, err = await adtech(env, *command)

    assert code == 1
    assert err.splitlines() == [f"error: moderation at {moderation_stopped}: UNAVAILABLE (not answering): "
                                "is moderation running at MODERATION_ADDR?"]
