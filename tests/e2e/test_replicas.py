"""Two processes of each service behind the callers' round-robin: approves
through the gateway answer 200 within the default wait even when another
replica than the one asked carries the saga to its end, and with one
replica of each service SIGKILLed mid-run every approve still settles,
with one escrow and one post job per target and `adtech verify` clean."""
import asyncio
import os
import signal

import httpx
import pytest

from tests.e2e.test_run_stack import Stack, adtech
from tests.e2e.test_stop_and_crash import approvable_targets, kill_everything, sandbox_of, token

pytestmark = pytest.mark.skipif(bool(os.environ.get("BASE_URL")), reason="needs to start its own stack")


async def approve_until_settled(http: httpx.AsyncClient, admin: dict, target_id: str) -> dict:
    """Approves, repeating on what says nothing about the outcome (the
    replica asked died under the call: 503, or the connection broke)."""
    for _ in range(60):
        try:
            reply = await http.post(f"/api/moderation/targets/{target_id}/approve", headers=admin, timeout=15)
        except httpx.HTTPError:
            await asyncio.sleep(0.2)
            continue
        if reply.status_code == 200:
            return reply.json()
        assert reply.status_code in (202, 503), reply.text  # settling, or a replica gone: ask again
        await asyncio.sleep(0.2)
    raise AssertionError(f"approve of {target_id} never settled")


def test_two_replicas_of_each_service_answer_settled_approves_and_survive_one_killed(tmp_path):
    stack = Stack(tmp_path, port_variables=True, replicas=2)
    try:
        stack.wait_ready_status(200, timeout=45)
        pids = stack.child_pids()
        assert {"campaigns-1", "campaigns-2", "moderation-1", "moderation-2", "payments-1", "payments-2"} <= set(pids)
        secret = (tmp_path / "secrets" / "ADTECH_JWT_SECRET").read_text().strip()
        admin = token(secret, "admin")

        async def scenario():
            async with httpx.AsyncClient(base_url=stack.base_url, timeout=15) as http, \
                    sandbox_of(stack, tmp_path) as sandbox:
                targets = await approvable_targets(http, admin, secret, 30, sandbox)
                # Ten moderators, every replica alive: each approve is 200 at once.
                first = await asyncio.gather(*(http.post(f"/api/moderation/targets/{t}/approve", headers=admin)
                                               for t in targets[:10]))
                assert [r.status_code for r in first] == [200] * 10, [r.text for r in first if r.status_code != 200]
                # One replica of each service dies in the middle of the next ones.
                load = asyncio.gather(*(approve_until_settled(http, admin, t) for t in targets[10:]))
                await asyncio.sleep(0.2)
                for name in ("moderation-2", "campaigns-1", "payments-2"):
                    os.kill(pids[name], signal.SIGKILL)
                settled = await load
                return targets, [r.json() for r in first] + settled
        targets, answers = asyncio.run(scenario())
        assert len({a["escrowId"] for a in answers}) == len({a["postJobId"] for a in answers}) == len(targets)
        verified = adtech(stack.env, "verify")
        assert verified.returncode == 0, verified.stdout + verified.stderr
    finally:
        stack.kill_leftovers()
        kill_everything(tmp_path)
