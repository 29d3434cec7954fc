"""Payouts over HTTP (API.md "Payouts"): a publisher withdraws with an
Idempotency-Key, the money waits in `pendingPayout`, an admin pays it out
or rejects it; every refusal with its status and code, and nothing moved
by any of them."""
import asyncio
import uuid

from tests.e2e.client import User, assert_error

WITHDRAWAL = {"id", "userId", "amount", "currency", "destination", "status", "externalReference", "reason",
              "createdAt", "updatedAt"}
IBAN = "DE89 3704 0044 0532 0130 00"


async def funded_publisher(api, amount: int) -> User:
    publisher = api.user("publisher")
    await api.deposit(publisher, amount)
    return publisher


async def withdraw(api, user: User, amount: int, key: str | None = None, destination: str = IBAN,
                   expect: int | None = 201):
    return await api.call("POST", "/api/wallet/withdrawals", user, expect=expect,
                          json={"amount": amount, "destination": destination},
                          headers={"Idempotency-Key": key or uuid.uuid4().hex})


async def own_wallet(api, user: User) -> dict:
    return await api.ok("GET", "/api/wallet", user)


async def test_withdrawal_is_201_pending_and_moves_the_money_into_pending_payout(api):
    publisher = await funded_publisher(api, 5_000)
    withdrawal = (await withdraw(api, publisher, 1_200)).json()
    assert set(withdrawal) == WITHDRAWAL
    assert {k: withdrawal[k] for k in ("userId", "amount", "currency", "destination", "status",
                                       "externalReference", "reason")} == \
        {"userId": publisher.id, "amount": 1_200, "currency": "USD", "destination": IBAN, "status": "pending",
         "externalReference": None, "reason": None}
    assert await own_wallet(api, publisher) == {"userId": publisher.id, "currency": "USD", "balance": 3_800,
                                                "held": 0, "pendingPayout": 1_200}
    entry = (await api.ledger(publisher))[0]
    assert (entry["kind"], entry["amount"], entry["balanceAfter"]) == ("withdrawal", -1_200, 3_800)


async def test_same_key_and_body_is_200_with_the_same_withdrawal_and_no_second_debit(api):
    publisher, key = await funded_publisher(api, 5_000), uuid.uuid4().hex
    first = (await withdraw(api, publisher, 1_000, key)).json()
    again = (await withdraw(api, publisher, 1_000, key, expect=200)).json()
    assert again == first
    assert (await own_wallet(api, publisher))["balance"] == 4_000


async def test_same_key_with_another_body_is_409(api):
    publisher, key = await funded_publisher(api, 5_000), uuid.uuid4().hex
    await withdraw(api, publisher, 1_000, key)
    assert_error(await withdraw(api, publisher, 1_001, key, expect=None), 409, code="idempotency_key_reused")
    assert_error(await withdraw(api, publisher, 1_000, key, destination="elsewhere", expect=None), 409,
                 code="idempotency_key_reused")
    assert (await own_wallet(api, publisher))["balance"] == 4_000


async def test_more_than_the_balance_is_402_and_moves_nothing(api):
    publisher = await funded_publisher(api, 500)
    assert_error(await withdraw(api, publisher, 501, expect=None), 402, code="insufficient_funds")
    assert await own_wallet(api, publisher) == {"userId": publisher.id, "currency": "USD", "balance": 500,
                                                "held": 0, "pendingPayout": 0}
    page = await api.ok("GET", "/api/wallet/withdrawals", publisher)
    assert page == {"items": [], "nextCursor": None}


async def test_concurrent_requests_with_one_key_make_one_withdrawal(api):
    publisher, key = await funded_publisher(api, 5_000), uuid.uuid4().hex
    replies = await asyncio.gather(*(withdraw(api, publisher, 700, key, expect=None) for _ in range(20)))
    assert sorted(r.status_code for r in replies) == [200] * 19 + [201]
    assert len({r.json()["id"] for r in replies}) == 1
    assert (await own_wallet(api, publisher))["pendingPayout"] == 700


async def test_only_a_publisher_withdraws(api):
    for role in ("advertiser", "admin"):
        assert_error(await withdraw(api, api.user(role), 10, expect=None), 403, code="forbidden")
    assert_error(await api.call("POST", "/api/wallet/withdrawals", None, json={"amount": 10, "destination": IBAN},
                                headers={"Idempotency-Key": "k"}), 401)


async def test_malformed_withdrawals_are_400(api):
    publisher = await funded_publisher(api, 500)
    for body in ({"amount": 0, "destination": IBAN}, {"amount": 1.5, "destination": IBAN}, {"amount": 10},
                 {"amount": 10, "destination": "   "}):
        assert_error(await api.call("POST", "/api/wallet/withdrawals", publisher, json=body,
                                    headers={"Idempotency-Key": uuid.uuid4().hex}), 400, code="invalid_input")
    assert_error(await api.call("POST", "/api/wallet/withdrawals", publisher,
                                json={"amount": 10, "destination": IBAN}), 400, code="invalid_input")
    assert (await own_wallet(api, publisher))["balance"] == 500


async def test_complete_is_200_paid_and_a_second_complete_or_reject_is_409(api):
    publisher = await funded_publisher(api, 5_000)
    withdrawal = (await withdraw(api, publisher, 2_000)).json()
    path = f"/api/withdrawals/{withdrawal['id']}"
    paid = await api.ok("POST", f"{path}/complete", api.admin, json={"externalReference": "SEPA-123"})
    assert set(paid) == WITHDRAWAL
    assert (paid["id"], paid["status"], paid["externalReference"], paid["reason"]) == \
        (withdrawal["id"], "paid", "SEPA-123", None)
    assert await own_wallet(api, publisher) == {"userId": publisher.id, "currency": "USD", "balance": 3_000,
                                                "held": 0, "pendingPayout": 0}
    assert_error(await api.call("POST", f"{path}/complete", api.admin, json={"externalReference": "SEPA-123"}),
                 409, code="withdrawal_not_pending")
    assert_error(await api.call("POST", f"{path}/reject", api.admin, json={"reason": "late"}), 409,
                 code="withdrawal_not_pending")
    assert (await own_wallet(api, publisher))["balance"] == 3_000


async def test_reject_is_200_and_puts_the_money_back(api):
    publisher = await funded_publisher(api, 5_000)
    withdrawal = (await withdraw(api, publisher, 2_000)).json()
    rejected = await api.ok("POST", f"/api/withdrawals/{withdrawal['id']}/reject", api.admin,
                            json={"reason": "account closed"})
    assert (rejected["status"], rejected["reason"], rejected["externalReference"]) == \
        ("rejected", "account closed", None)
    assert await own_wallet(api, publisher) == {"userId": publisher.id, "currency": "USD", "balance": 5_000,
                                                "held": 0, "pendingPayout": 0}
    entries = await api.ledger(publisher)
    assert [(e["kind"], e["amount"], e["balanceAfter"]) for e in entries[:2]] == \
        [("withdrawal", 2_000, 5_000), ("withdrawal", -2_000, 3_000)]


async def test_complete_racing_reject_has_one_winner_and_one_409(api):
    publisher = await funded_publisher(api, 5_000)
    withdrawal = (await withdraw(api, publisher, 2_000)).json()
    path = f"/api/withdrawals/{withdrawal['id']}"
    replies = await asyncio.gather(
        api.call("POST", f"{path}/complete", api.admin, json={"externalReference": "SEPA-9"}),
        api.call("POST", f"{path}/reject", api.admin, json={"reason": "duplicate"}))
    assert sorted(r.status_code for r in replies) == [200, 409]
    winner = next(r.json() for r in replies if r.status_code == 200)
    wallet = await own_wallet(api, publisher)
    assert (wallet["balance"], wallet["pendingPayout"]) == ((3_000, 0) if winner["status"] == "paid" else (5_000, 0))


async def test_complete_and_reject_are_admin_only_and_unknown_is_404(api):
    publisher = await funded_publisher(api, 5_000)
    withdrawal = (await withdraw(api, publisher, 100)).json()
    for user in (publisher, api.user("advertiser")):
        assert_error(await api.call("POST", f"/api/withdrawals/{withdrawal['id']}/complete", user,
                                    json={"externalReference": "x"}), 403, code="forbidden")
        assert_error(await api.call("POST", f"/api/withdrawals/{withdrawal['id']}/reject", user,
                                    json={"reason": "x"}), 403, code="forbidden")
    unknown = uuid.uuid4()
    assert_error(await api.call("POST", f"/api/withdrawals/{unknown}/complete", api.admin,
                                json={"externalReference": "x"}), 404, code="withdrawal_not_found")
    assert_error(await api.call("POST", f"/api/withdrawals/{unknown}/reject", api.admin, json={"reason": "x"}),
                 404, code="withdrawal_not_found")
    assert_error(await api.call("POST", "/api/withdrawals/not-a-uuid/complete", api.admin,
                                json={"externalReference": "x"}), 400, code="invalid_input")
    assert_error(await api.call("POST", f"/api/withdrawals/{withdrawal['id']}/complete", api.admin, json={}), 400,
                 code="invalid_input")
    assert (await own_wallet(api, publisher))["pendingPayout"] == 100


async def test_own_list_is_newest_first_through_pages(api):
    publisher = await funded_publisher(api, 5_000)
    ids = [(await withdraw(api, publisher, 100 + i)).json()["id"] for i in range(5)]
    seen, cursor = [], None
    while True:
        page = await api.ok("GET", "/api/wallet/withdrawals", publisher,
                            params={"limit": 2, **({"cursor": cursor} if cursor else {})})
        assert set(page) == {"items", "nextCursor"} and all(set(w) == WITHDRAWAL for w in page["items"])
        seen += [w["id"] for w in page["items"]]
        if not (cursor := page["nextCursor"]):
            break
    assert seen == ids[::-1]
    other = await api.ok("GET", "/api/wallet/withdrawals", api.user("publisher"))
    assert other == {"items": [], "nextCursor": None}


async def test_admin_list_filters_by_status_and_refuses_others(api):
    publisher = await funded_publisher(api, 5_000)
    first = (await withdraw(api, publisher, 100)).json()
    second = (await withdraw(api, publisher, 200)).json()
    await api.ok("POST", f"/api/withdrawals/{first['id']}/complete", api.admin, json={"externalReference": "R1"})
    paid = await api.ok("GET", "/api/withdrawals", api.admin, params={"status": "paid", "limit": 200})
    assert first["id"] in [w["id"] for w in paid["items"]] and {w["status"] for w in paid["items"]} == {"paid"}
    pending = await api.ok("GET", "/api/withdrawals", api.admin, params={"status": "pending", "limit": 200})
    assert second["id"] in [w["id"] for w in pending["items"]] and first["id"] not in [w["id"] for w in pending["items"]]
    assert_error(await api.call("GET", "/api/withdrawals", publisher), 403, code="forbidden")
    for params in ({"status": "lost"}, {"limit": 0}, {"limit": 201}, {"cursor": "not-ours"}):
        assert_error(await api.call("GET", "/api/withdrawals", api.admin, params=params), 400, code="invalid_input")
    assert_error(await api.call("GET", "/api/wallet/withdrawals", publisher, params={"cursor": "bad"}), 400,
                 code="invalid_input")
