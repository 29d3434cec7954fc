"""E.3 of the seed's test plan: races through the gateway, all callers
released at once with asyncio.gather; each ends with exactly one effect,
the same as seen from campaigns, payments and moderation."""
import asyncio
import uuid

from tests.e2e.client import Flow, assert_error, from_now

PRICE = 1_000


async def test_twenty_concurrent_approves_of_one_target_give_one_escrow_one_post_job_one_debit(api):
    flow = await api.flow(price=PRICE, funds=10_000)

    responses = await asyncio.gather(*(api.approve(flow.target_id) for _ in range(20)))

    # Concurrent approves join the one saga and wait for its end (well within
    # the stack's MODERATION_APPROVE_WAIT_MS): every one is 200 with the same
    # post job and escrow (API.md "Moderation").
    assert [r.status_code for r in responses] == [200] * 20, [r.text for r in responses]
    results = [r.json() for r in responses]
    assert {(r["ok"], r["targetId"], r["status"], r["postJobId"], r["escrowId"]) for r in results} == \
        {(True, flow.target_id, "approved", results[0]["postJobId"], results[0]["escrowId"])}
    assert not all(r["alreadyApproved"] for r in results)  # the approve that started the saga says so
    target = await api.get_target(flow)
    assert target["status"] == "approved" and target["postJob"]["id"] == results[0]["postJobId"]
    escrow = await api.ok("GET", f"/api/escrows/{flow.target_id}", api.admin)
    assert (escrow["id"], escrow["status"], escrow["amount"]) == (results[0]["escrowId"], "held", PRICE)
    assert await api.wallet(flow.advertiser) == \
        {"userId": flow.advertiser.id, "currency": "USD", "balance": 10_000 - PRICE, "held": PRICE, "pendingPayout": 0}
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


async def test_approve_racing_reject_ends_with_one_outcome_per_target_in_every_service(api):
    flows = await _submitted_targets(api, 8, price=PRICE, funds=8 * PRICE)

    async def race(flow: Flow):
        return await asyncio.gather(
            api.approve(flow.target_id),
            api.call("POST", f"/api/moderation/targets/{flow.target_id}/reject", api.admin, json={"reason": "race"}))
    answers = await asyncio.gather(*(race(f) for f in flows))

    approved = 0
    for flow, (approve, reject) in zip(flows, answers):
        seen = f"{flow.target_id}: approve {approve.status_code} {approve.text}, reject {reject.status_code} {reject.text}"
        target = await api.get_target(flow)
        escrow = await api.call("GET", f"/api/escrows/{flow.target_id}", api.admin)
        decision = await api.ok("GET", f"/api/moderation/targets/{flow.target_id}", api.admin)
        # Either may win; what each answer says and what every service shows must agree with the winner.
        if approve.status_code == 200:
            approved += 1
            result = approve.json()
            assert (result["status"], result["alreadyApproved"]) == ("approved", False), seen
            # The reject lost: refused while the target was being approved (409), or once it was (400).
            if reject.status_code == 409:
                assert_error(reject, 409, "Target is being approved; try again later", "target_being_approved")
            else:
                assert_error(reject, 400, "Target cannot be rejected from status approved", "invalid_transition")
            assert target["status"] == "approved" and target["postJob"]["id"] == result["postJobId"], seen
            assert escrow.status_code == 200, seen
            assert (escrow.json()["id"], escrow.json()["status"], escrow.json()["amount"]) == \
                (result["escrowId"], "held", PRICE)
            assert (decision["decision"], decision["status"], decision["postJobId"], decision["escrowId"]) == \
                ("approve", "approved", result["postJobId"], result["escrowId"])
        else:
            # The reject won: the approve's first step found the target rejected.
            assert_error(approve, 400, "Target cannot be approved from status rejected", "target_not_submitted")
            assert reject.status_code == 200, seen
            assert (reject.json()["status"], reject.json()["moderationReason"]) == ("rejected", "race")
            assert target["status"] == "rejected" and target["postJob"] is None, seen
            assert_error(escrow, 404)
            assert (decision["decision"], decision["status"], decision["postJobId"], decision["escrowId"]) == \
                ("reject", "rejected", None, None)
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

    # Which five win is a race; each answer is either the approval (200) or
    # the wallet's refusal (402), and the target agrees with it below.
    outcomes = []
    for flow, response in zip(flows, responses):
        if response.status_code == 402:
            assert_error(response, 402, code="insufficient_funds")
            outcomes.append("insufficient_funds")
        else:
            assert response.status_code == 200, response.text
            outcomes.append("approved")
    assert sorted(outcomes) == ["approved"] * 5 + ["insufficient_funds"] * 7, [r.text for r in responses]
    assert await api.wallet(advertiser) == {"userId": advertiser.id, "currency": "USD", "balance": 0, "held": 5 * PRICE, "pendingPayout": 0}
    entries = await api.ledger(advertiser)
    assert all(e["balanceAfter"] >= 0 for e in entries)
    assert sorted(e["kind"] for e in entries) == ["deposit"] + ["escrow_hold"] * 5
    for flow, outcome, response in zip(flows, outcomes, responses):
        target = await api.get_target(flow)
        if outcome == "approved":
            assert target["status"] == "approved" and target["postJob"]["id"] == response.json()["postJobId"]
            escrow = await api.ok("GET", f"/api/escrows/{flow.target_id}", api.admin)
            assert (escrow["id"], escrow["status"]) == (response.json()["escrowId"], "held")
        else:
            assert target["status"] == "submitted"
            await api.assert_nothing_held(flow, None)
