"""E.4 of the seed's test plan: after E.1–E.3 have run against the stack,
the cross-service invariants hold, seen by `adtech verify` (through the
services' own APIs) and over HTTP (ledgers, escrows, post jobs)."""
import asyncio
import collections

import pytest

from tests.e2e.client import Flow


@pytest.fixture(scope="module", autouse=True)
async def one_more_approval(api):
    """So the checks see an approval even when this module runs alone."""
    flow: Flow = await api.flow(price=1_200, funds=5_000)
    assert (await api.approve(flow.target_id)).status_code == 200


async def test_adtech_verify_exits_zero_and_prints_its_table(adtech_verify):
    code, out, err = await adtech_verify("--max-outbox-age", "60")

    assert code == 0, out + err
    header, *rows = out.splitlines()
    assert header.split() == ["check", "ok", "violations", "first", "offenders"]
    assert len(rows) >= 8 and all(row.split()[1:3] == ["yes", "0"] for row in rows), out


async def _in_batches(calls, size: int = 20) -> list:
    results = []
    for start in range(0, len(calls), size):
        results += await asyncio.gather(*(call() for call in calls[start:start + size]))
    return results


async def test_every_wallets_ledger_sums_to_its_balance_and_chains_balance_after(api):
    async def check(user):
        wallet = await api.ok("GET", "/api/wallet", user)
        entries = list(reversed(await api.ledger(user)))  # oldest first
        running = 0
        for entry in entries:
            running += entry["amount"]
            assert entry["balanceAfter"] == running >= 0, (user.id, entry)
        assert wallet["balance"] == running and wallet["balance"] >= 0 and wallet["held"] >= 0, (user.id, wallet)
        return len(entries)

    counts = await _in_batches([lambda u=u: check(u) for u in api.advertisers])
    assert sum(counts) > 0


async def test_every_approved_target_has_the_escrow_and_post_job_its_approve_reported(api):
    async def check(target_id, result):
        escrow = await api.ok("GET", f"/api/escrows/{target_id}", api.admin)
        assert (escrow["id"], escrow["targetId"], escrow["status"]) == (result["escrowId"], target_id, "held")
        return escrow

    approved = dict(api.approved)
    escrows = await _in_batches([lambda t=t, r=r: check(t, r) for t, r in approved.items()])
    assert len({e["id"] for e in escrows}) == len(approved)
    assert len({r["postJobId"] for r in approved.values()}) == len(approved)
    held = collections.Counter()
    for escrow in escrows:
        held[escrow["advertiserId"]] += escrow["amount"]
    wallets = await _in_batches([lambda a=a: api.ok("GET", f"/api/wallets/{a}", api.admin) for a in held])
    assert {w["userId"]: w["held"] for w in wallets} == dict(held)
