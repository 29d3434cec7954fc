"""`adtech verify` as the operator runs it: a separate process pointed at the
real services (in-process stack on free ports) with the internal token."""
import asyncio
import os
import sys

import pytest

from adtech.moderation.v1 import moderation_pb2
from common.auth import acting_as
from operations.verify import report
from services.verify import Check
from tests import harness
from tests.stack import Stack


@pytest.fixture(scope="module")
async def stack(pg_server, data_dir):
    running = await Stack(pg_server, data_dir).start()
    yield running
    await running.close()


def _env(stack: Stack, data_dir, **addresses) -> dict[str, str]:
    env = {**os.environ, "ADTECH_INTERNAL_TOKEN": harness.INTERNAL_TOKEN, "ADTECH_DATA_DIR": str(data_dir),
           "GRPC_DEADLINE_MS": "5000"}
    env.pop("DATABASE_URL", None)
    env.update({f"{ctx.upper()}_ADDR": stack.address(ctx) for ctx in ("campaigns", "moderation", "payments")})
    env.update({f"{ctx.upper()}_ADDR": addr for ctx, addr in addresses.items()})
    return env


async def _verify(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    # A child process, awaited without blocking: the services answer from this event loop.
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "operations", "verify", *args, env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    return proc.returncode, out.decode(), err.decode()


async def test_verify_exits_zero_with_its_table_after_an_approval(stack, data_dir):
    world = stack.world()
    _, _, target = await world.ready_to_approve(price=700, funds=1_000)
    with acting_as(world.admin):
        reply = await world.moderation.Approve(moderation_pb2.ApproveRequest(target_id=target.id, wait_ms=5000))
    assert reply.decision.status == "approved"

    code, out, err = await _verify(_env(stack, data_dir), "--max-outbox-age", "30")

    assert code == 0, out + err
    lines = out.splitlines()
    assert lines[0].split() == ["check", "ok", "violations", "first", "offenders"]
    names = {line.split()[0] for line in lines[1:]}
    assert {"escrow_per_target_unique", "post_job_per_target_unique", "approved_target_has_escrow_and_post_job",
            "held_escrow_has_approved_target_or_running_saga", "outbox:moderation:no_dead_letters",
            "outbox:campaigns:oldest_pending_young"} <= names
    assert any(name.startswith("ledger:") for name in names)
    assert all(line.split()[1] == "yes" for line in lines[1:])
    assert "all checks passed" in err


async def test_verify_exits_non_zero_naming_an_unreachable_service(stack, data_dir):
    code, _, err = await _verify(_env(stack, data_dir, payments=f"127.0.0.1:{harness.free_port()}"))

    assert code != 0
    assert "UNAVAILABLE" in err


def test_report_counts_violations_and_shows_the_first_offenders():
    checks = [Check("escrow_per_target_unique", []),
              Check("post_job_per_target_unique", [f"t{i}: 2 post jobs" for i in range(5)])]

    table, ok = report(checks)

    assert not ok
    row = table.splitlines()[2]
    assert row.split()[:3] == ["post_job_per_target_unique", "NO", "5"]
    assert "t0: 2 post jobs; t1: 2 post jobs; t2: 2 post jobs …" in row
    assert "t3" not in row


def test_report_of_no_checks_is_not_a_pass():
    assert report([])[1] is False
