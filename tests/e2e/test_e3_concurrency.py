"""E.3 of the seed's test plan: races through the gateway, all callers
released at once with asyncio.gather; each ends with exactly one effect,
the same as seen from campaigns, payments and moderation."""
import asyncio
import uuid

from tests.e2e.client import Flow, assert_error, from_now

PRICE = 1_000


async def _final_approve(api, target_id: str, response) -> dict:
    """The approve's result once settled: a 202 is followed to its end."""
    if response.status_code == 202:
        decision = await api.settle(target_id)
        assert decision["status"] == "approved", decision
        response = await api.approve(target_id)
    assert response.status_code == 200, response.text
    return response.json()


async def test_twenty_concurrent_approves_of_one_target_give_one_escrow_one_post_job_one_debit(api):
    flow = await api.flow(price=PRICE, funds=10_000)

    responses = await asyncio.gather(*(api.approve(flow.target_id) for _ in range(20)))

    assert {r.status_code for r in responses} <= {200, 202}, [r.text for r in responses if r.status_code not in (200, 202)]
    results = [await _final_approve(api, flow.target_id, r) for r in responses]
    assert len({(r["postJobId"], r["escrowId"]) for r in results}) == 1
    target = await api.get_target(flow)
    assert target["status"] == "approved" and target["postJob"]["id"] == results[0]["postJobId"]
    escrow = await api.ok("GET", f"/api/escrows/{flow.target_id}", api.admin)
    assert (escrow["id"], escrow["status"], escrow["amount"]) == (results[0]["escrowId"], "held", PRICE)
    assert await api.wallet(flow.advertiser) == \
        {"userId": flow.advertiser.id, "currency": "USD", "balance": 10_000 - PRICE, "held": PRICE}
    assert [e["kind"] for e in await api.ledger(flow.advertiser)] == ["escrow_hold", "deposit"]


async def test_twenty_concurrent_approves_of_a_target_that_cannot_be_approved_are_all_refused_with_its_reason(api):
    flow = await api.flow(price=PRICE, funds=10_000)
    await api.ok("POST", f"/api/campaigns/{flow.campaign['id']}/pause", flow.advertiser)

    responses = await asyncio.gather(*(api.approve(flow.target_id) for _ in range(20)))

    assert [(r.status_code, r.json()["error"]["code"]) for r in responses] == [(400, "campaign_not_active")] * 20
    assert (await api.decision(flow.target_id)).status_code == 404  # a refused approve decided nothing
    assert (await api.get_target(flow))["status"] == "submitted"


async def test_twenty_concurrent_approves_of_a_target_that_does_not_exist_are_all_404(api):
    import uuid
    missing = str(uuid.uuid4())
    responses = await asyncio.gather(*(api.approve(missing) for _ in range(20)))
    assert {r.status_code for r in responses} == {404}, [r.text for r in responses]


async def _submitted_targets(api, count: int, *, price: int, funds: int) -> list[Flow]:
    """`count` submitted targets of one advertiser's campaign on one channel."""
    advertiser = api.user("advertiser")
    publisher, channel = await api.approved_channel(price)
    await api.deposit(advertiser, funds)
    campaign = await api.campaign(advertiser)
    targets = await asyncio.gather(*(api.add_target(advertiser, campaign, channel, from_now(days=1, minutes=61 * i))
                                     for i in range(count)))
    targets = await asyncio.gather(*(api.submit(advertiser, t) for t in targets))
    return [Flow(advertiser, publisher, channel, campaign, t) for t in targets]


async def _approve_outcome(api, target_id: str, response) -> str:
    if response.status_code == 202:
        return (await api.settle(target_id))["status"]
    if response.status_code == 200:
        return "approved"
    assert_error(response, response.status_code)
    assert response.status_code in (400, 409), response.text
    return "refused"


async def test_approve_racing_reject_ends_with_one_outcome_per_target_in_every_service(api):
    flows = await _submitted_targets(api, 8, price=PRICE, funds=8 * PRICE)

    async def race(flow: Flow):
        return await asyncio.gather(
            api.approve(flow.target_id),
            api.call("POST", f"/api/moderation/targets/{flow.target_id}/reject", api.admin, json={"reason": "race"}))
    answers = await asyncio.gather(*(race(f) for f in flows))

    approved = 0
    for flow, (approve, reject) in zip(flows, answers):
        approve_outcome = await _approve_outcome(api, flow.target_id, approve)
        if reject.status_code != 200:
            assert_error(reject, reject.status_code)
            assert reject.status_code in (400, 409), reject.text
        winners = [name for name, won in (("approved", approve_outcome == "approved"), ("rejected", reject.status_code == 200)) if won]
        assert len(winners) == 1, f"{flow.target_id}: approve {approve.status_code} {approve.text}, reject {reject.status_code} {reject.text}"
        target = await api.get_target(flow)
        assert target["status"] == winners[0]
        escrow = await api.call("GET", f"/api/escrows/{flow.target_id}", api.admin)
        if winners[0] == "approved":
            approved += 1
            assert escrow.status_code == 200 and escrow.json()["status"] == "held" and escrow.json()["amount"] == PRICE
            assert target["postJob"] is not None
        else:
            assert_error(escrow, 404)
            assert target["postJob"] is None
    wallet = await api.wallet(flows[0].advertiser)
    assert (wallet["balance"], wallet["held"]) == (8 * PRICE - approved * PRICE, approved * PRICE)


async def test_ten_concurrent_deposits_with_one_key_credit_once_with_one_transaction(api):
    user, key = api.user("advertiser"), uuid.uuid4().hex
    await api.open_wallet(user)

    responses = await asyncio.gather(*(
        api.call("POST", f"/api/wallets/{user.id}/deposits", api.admin, json={"amount": 3_000, "reference": "once"},
                 headers={"Idempotency-Key": key}) for _ in range(10)))

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 9 + [201], [r.text for r in responses]
    assert len({r.json()["transactionId"] for r in responses}) == 1
    assert (await api.wallet(user))["balance"] == 3_000
    assert [(e["kind"], e["amount"]) for e in await api.ledger(user)] == [("deposit", 3_000)]


async def test_a_deposit_key_reused_with_another_body_is_409_and_credits_nothing_more(api):
    user, key = api.user("advertiser"), uuid.uuid4().hex
    path, headers = f"/api/wallets/{user.id}/deposits", {"Idempotency-Key": key}
    await api.open_wallet(user)
    await api.ok("POST", path, api.admin, 201, json={"amount": 500}, headers=headers)

    for other in ({"amount": 501}, {"amount": 500, "reference": "another"}):
        assert_error(await api.call("POST", path, api.admin, json=other, headers=headers), 409)
    other_user = api.user("advertiser")
    assert_error(await api.call("POST", f"/api/wallets/{other_user.id}/deposits", api.admin, json={"amount": 500},
                                headers=headers), 409)

    assert (await api.wallet(user))["balance"] == 500
    assert (await api.wallet(other_user))["balance"] == 0


async def test_twelve_concurrent_approvals_against_a_wallet_covering_five_approve_exactly_five(api):
    flows = await _submitted_targets(api, 12, price=PRICE, funds=5 * PRICE)
    advertiser = flows[0].advertiser

    responses = await asyncio.gather(*(api.approve(f.target_id) for f in flows))

    outcomes = []
    for flow, response in zip(flows, responses):
        if response.status_code == 202:
            decision = await api.settle(flow.target_id)
            outcomes.append("approved" if decision["status"] == "approved" else decision["reason"])
        elif response.status_code == 402:
            assert_error(response, 402, code="insufficient_funds")
            outcomes.append("insufficient_funds")
        else:
            assert response.status_code == 200, response.text
            outcomes.append("approved")
    assert sorted(outcomes) == ["approved"] * 5 + ["insufficient_funds"] * 7, [r.text for r in responses]
    assert await api.wallet(advertiser) == {"userId": advertiser.id, "currency": "USD", "balance": 0, "held": 5 * PRICE}
    entries = await api.ledger(advertiser)
    assert all(e["balanceAfter"] >= 0 for e in entries)
    assert sorted(e["kind"] for e in entries) == ["deposit"] + ["escrow_hold"] * 5
    for flow, outcome in zip(flows, outcomes):
        target = await api.get_target(flow)
        if outcome == "approved":
            assert target["status"] == "approved" and target["postJob"] is not None
        else:
            assert target["status"] == "submitted"
            await api.assert_nothing_held(flow, None)
