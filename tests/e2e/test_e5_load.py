"""E.5 of the seed's test plan: N advertisers at once (E2E_LOAD_N, default
10 in `make test`; the seed's 50 with E2E_LOAD_N=50), each through the whole
flow with two targets on its own publisher's channel. Zero duplicates, every
wallet exact, approve latency recorded and printed (no timing assertions:
`make bench` measures speed). Runs last, then `adtech verify` again."""
import asyncio
import os
import statistics
import time

from tests.e2e.client import from_now

N = int(os.environ.get("E2E_LOAD_N", "10"))
PRICE, FUNDS = 1_100, 5_000


async def _one_advertiser(api, index: int, latencies: list[float]) -> list[dict]:
    advertiser = api.user("advertiser")
    _, channel = await api.approved_channel(PRICE)
    await api.deposit(advertiser, FUNDS)
    campaign = await api.campaign(advertiser, name=f"Load {index}")
    targets = [await api.add_target(advertiser, campaign, channel, from_now(days=1, minutes=m)) for m in (0, 61)]
    targets = [await api.submit(advertiser, t) for t in targets]
    results = []
    for target in targets:
        started = time.perf_counter()
        response = await api.approve(target["id"])
        latencies.append(time.perf_counter() - started)
        if response.status_code == 202:
            decision = await api.settle(target["id"])
            assert decision["status"] == "approved", decision
            results.append({"targetId": target["id"], "postJobId": decision["postJobId"], "escrowId": decision["escrowId"]})
        else:
            assert response.status_code == 200, response.text
            results.append(response.json())
    wallet = await api.wallet(advertiser)
    assert (wallet["balance"], wallet["held"]) == (FUNDS - 2 * PRICE, 2 * PRICE), wallet
    for target, result in zip(targets, results):
        got = await api.get_target(target)
        assert got["status"] == "approved" and got["postJob"]["id"] == result["postJobId"]
    return results


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


async def test_n_advertisers_in_parallel_each_get_two_approvals_without_duplicates(api, capsys):
    latencies: list[float] = []

    per_advertiser = await asyncio.gather(*(_one_advertiser(api, i, latencies) for i in range(N)))

    results = [r for rs in per_advertiser for r in rs]
    assert len(results) == 2 * N
    assert len({r["targetId"] for r in results}) == 2 * N
    assert len({r["postJobId"] for r in results}) == 2 * N
    assert len({r["escrowId"] for r in results}) == 2 * N
    with capsys.disabled():
        print(f"\nE.5: {N} advertisers, {len(latencies)} approves: p50 {statistics.median(latencies) * 1000:.0f} ms, "
              f"p95 {_percentile(latencies, 0.95) * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms")


async def test_adtech_verify_passes_at_the_end_of_the_suite(adtech_verify):
    code, out, err = await adtech_verify()

    assert code == 0, out + err
