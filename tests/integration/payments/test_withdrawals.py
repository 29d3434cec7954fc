"""Publisher payouts: a withdrawal moves the amount from the wallet into the
user's pending-payouts account at once, once per Idempotency-Key; an admin
pays it out or rejects it (the money back), exactly once, never leaving a
balance negative; reconcile proves it after every mix."""
import asyncio

import grpc
import sqlalchemy as sa

from adtech.payments.v1 import payments_pb2 as pb
from common.auth import Actor
from tests.integration.payments.conftest import ADMIN, new_id, refusal


def publisher() -> Actor:
    return Actor(new_id(), "publisher")


async def funded(payments, amount: int) -> Actor:
    user = publisher()
    await payments.call("GetWallet", pb.GetWalletRequest(user_id=user.id), user)
    await payments.call("Deposit", pb.DepositRequest(user_id=user.id, amount=amount, idempotency_key=new_id()), ADMIN)
    return user


async def withdraw(payments, user: Actor, amount: int, key: str | None = None, destination: str = "IBAN DE00 1"):
    return await payments.call("RequestWithdrawal", pb.RequestWithdrawalRequest(
        amount=amount, destination=destination, idempotency_key=key or new_id()), user)


async def complete(payments, withdrawal_id: str, reference: str = "wire-1"):
    return await payments.call("CompleteWithdrawal", pb.CompleteWithdrawalRequest(
        withdrawal_id=withdrawal_id, external_reference=reference), ADMIN)


async def reject(payments, withdrawal_id: str, reason: str = "destination closed"):
    return await payments.call("RejectWithdrawal", pb.RejectWithdrawalRequest(
        withdrawal_id=withdrawal_id, reason=reason), ADMIN)


async def wallet_entries(payments, user: Actor) -> list[tuple[str, int]]:
    reply = await payments.call("ListLedger", pb.ListLedgerRequest(user_id=user.id, limit=200), user)
    return [(e.kind, e.amount) for e in reply.entries]


async def test_withdrawal_moves_the_amount_into_pending_payout_in_one_transaction(payments):
    user = await funded(payments, 1_000)
    reply = await withdraw(payments, user, 400)
    w = reply.withdrawal
    assert (w.user_id, w.amount, w.currency, w.status, w.destination, reply.replayed) == \
        (user.id, 400, "USD", "pending", "IBAN DE00 1", False)
    wallet = await payments.wallet(user.id)
    assert (wallet.balance, wallet.pending_payout) == (600, 400)
    assert (await wallet_entries(payments, user))[0] == ("withdrawal", -400)
    legs = await payments.scalar("""
        SELECT count(*) FROM ledger_entries e JOIN ledger_transactions t ON t.id = e.transaction_id
         WHERE t.reference = :id AND t.kind = 'withdrawal'""", id=w.id)
    assert legs == 2
    await payments.assert_reconciled()


async def test_same_key_and_body_answers_the_same_withdrawal(payments):
    user, key = await funded(payments, 1_000), new_id()
    first = await withdraw(payments, user, 300, key)
    again = await withdraw(payments, user, 300, key)
    assert again.withdrawal.id == first.withdrawal.id and again.replayed
    assert (await payments.wallet(user.id)).balance == 700


async def test_same_key_with_another_body_is_already_exists(payments):
    user, key = await funded(payments, 1_000), new_id()
    await withdraw(payments, user, 300, key)
    for amount, destination in ((301, "IBAN DE00 1"), (300, "IBAN DE00 2")):
        code, reason = await refusal(withdraw(payments, user, amount, key, destination))
        assert (code, reason) == (grpc.StatusCode.ALREADY_EXISTS, "idempotency_key_reused")
    assert (await payments.wallet(user.id)).balance == 700


async def test_more_than_the_balance_is_insufficient_funds_and_moves_nothing(payments):
    user, key = await funded(payments, 100), new_id()
    code, reason = await refusal(withdraw(payments, user, 101, key))
    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "insufficient_funds")
    wallet = await payments.wallet(user.id)
    assert (wallet.balance, wallet.pending_payout) == (100, 0)
    assert await payments.scalar("SELECT count(*) FROM withdrawals WHERE user_id = CAST(:u AS uuid)", u=user.id) == 0
    # The key was not spent by the refusal.
    assert (await withdraw(payments, user, 100, key)).withdrawal.status == "pending"


async def test_twenty_concurrent_requests_with_one_key_make_one_withdrawal_and_one_debit(payments):
    user, key = await funded(payments, 1_000), new_id()
    replies = await asyncio.gather(*(withdraw(payments, user, 250, key) for _ in range(20)))
    assert len({r.withdrawal.id for r in replies}) == 1
    assert sum(not r.replayed for r in replies) == 1
    wallet = await payments.wallet(user.id)
    assert (wallet.balance, wallet.pending_payout) == (750, 250)
    assert [k for k, _ in await wallet_entries(payments, user)].count("withdrawal") == 1
    await payments.assert_reconciled()


async def test_concurrent_withdrawals_beyond_the_balance_never_make_it_negative(payments):
    user = await funded(payments, 1_000)
    results = await asyncio.gather(*(withdraw(payments, user, 300) for _ in range(10)), return_exceptions=True)
    accepted = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(accepted) == 3 and len(refused) == 7
    assert {r.code() for r in refused} == {grpc.StatusCode.FAILED_PRECONDITION}
    wallet = await payments.wallet(user.id)
    assert (wallet.balance, wallet.pending_payout) == (100, 900)
    await payments.assert_reconciled()


async def test_complete_pays_out_once_and_a_second_complete_is_aborted(payments):
    user = await funded(payments, 1_000)
    w = (await withdraw(payments, user, 400)).withdrawal
    paid = (await complete(payments, w.id, "wire-77")).withdrawal
    assert (paid.status, paid.external_reference, paid.reason) == ("paid", "wire-77", "")
    wallet = await payments.wallet(user.id)
    assert (wallet.balance, wallet.pending_payout) == (600, 0)
    code, reason = await refusal(complete(payments, w.id, "wire-77"))
    assert (code, reason) == (grpc.StatusCode.ABORTED, "withdrawal_not_pending")
    code, reason = await refusal(reject(payments, w.id))
    assert (code, reason) == (grpc.StatusCode.ABORTED, "withdrawal_not_pending")
    assert await payments.scalar(
        "SELECT count(*) FROM ledger_transactions WHERE kind = 'payout' AND reference = :id", id=w.id) == 1
    await payments.assert_reconciled()


async def test_reject_puts_the_money_back_in_the_wallet(payments):
    user = await funded(payments, 1_000)
    w = (await withdraw(payments, user, 400)).withdrawal
    rejected = (await reject(payments, w.id, "name does not match")).withdrawal
    assert (rejected.status, rejected.reason, rejected.external_reference) == ("rejected", "name does not match", "")
    wallet = await payments.wallet(user.id)
    assert (wallet.balance, wallet.pending_payout) == (1_000, 0)
    assert (await wallet_entries(payments, user))[:2] == [("withdrawal", 400), ("withdrawal", -400)]
    await payments.assert_reconciled()


async def test_complete_racing_reject_ends_with_exactly_one(payments):
    for _ in range(5):
        user = await funded(payments, 1_000)
        w = (await withdraw(payments, user, 500)).withdrawal
        results = await asyncio.gather(complete(payments, w.id), reject(payments, w.id), complete(payments, w.id),
                                       reject(payments, w.id), return_exceptions=True)
        won = [r for r in results if not isinstance(r, BaseException)]
        lost = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
        assert len(won) == 1 and len(lost) == 3
        assert {r.code() for r in lost} == {grpc.StatusCode.ABORTED}
        wallet = await payments.wallet(user.id)
        status = won[0].withdrawal.status
        assert (wallet.balance, wallet.pending_payout) == ((500, 0) if status == "paid" else (1_000, 0))
    await payments.assert_reconciled()


async def test_unknown_withdrawal_is_not_found(payments):
    for move in (complete, reject):
        code, reason = await refusal(move(payments, new_id()))
        assert (code, reason) == (grpc.StatusCode.NOT_FOUND, "withdrawal_not_found")


async def test_only_a_publisher_requests_and_only_an_admin_pays_or_rejects(payments):
    user = await funded(payments, 1_000)
    for role in ("advertiser", "admin", "system"):
        code, _ = await refusal(withdraw(payments, Actor(user.id, role), 10))
        assert code == grpc.StatusCode.PERMISSION_DENIED
    w = (await withdraw(payments, user, 10)).withdrawal
    for actor in (user, Actor(new_id(), "advertiser"), Actor(new_id(), "system")):
        for method, request in (("CompleteWithdrawal", pb.CompleteWithdrawalRequest(withdrawal_id=w.id,
                                                                                     external_reference="x")),
                                ("RejectWithdrawal", pb.RejectWithdrawalRequest(withdrawal_id=w.id, reason="x"))):
            code, _ = await refusal(payments.call(method, request, actor))
            assert code == grpc.StatusCode.PERMISSION_DENIED


async def test_lists_are_newest_first_by_owner_or_admin_and_filter_by_status(payments):
    user = await funded(payments, 1_000)
    ids = [(await withdraw(payments, user, 10 + i)).withdrawal.id for i in range(5)]
    await complete(payments, ids[0])
    await reject(payments, ids[1])
    own, cursor = [], ""
    while True:
        page = await payments.call("ListWithdrawals", pb.ListWithdrawalsRequest(
            user_id=user.id, limit=2, cursor=cursor), user)
        own += [w.id for w in page.withdrawals]
        cursor = page.next_cursor
        if not cursor:
            break
    assert own == ids[::-1]
    code, _ = await refusal(payments.call("ListWithdrawals", pb.ListWithdrawalsRequest(user_id=user.id),
                                          publisher()))
    assert code == grpc.StatusCode.PERMISSION_DENIED
    code, _ = await refusal(payments.call("ListWithdrawals", pb.ListWithdrawalsRequest(), user))
    assert code == grpc.StatusCode.PERMISSION_DENIED
    paid = await payments.call("ListWithdrawals", pb.ListWithdrawalsRequest(status="paid", limit=200), ADMIN)
    assert ids[0] in [w.id for w in paid.withdrawals] and {w.status for w in paid.withdrawals} == {"paid"}
    for bad in (pb.ListWithdrawalsRequest(status="lost"), pb.ListWithdrawalsRequest(cursor="not-ours")):
        code, _ = await refusal(payments.call("ListWithdrawals", bad, ADMIN))
        assert code == grpc.StatusCode.INVALID_ARGUMENT


async def test_blank_destination_reference_or_reason_is_invalid(payments):
    user = await funded(payments, 1_000)
    code, _ = await refusal(withdraw(payments, user, 10, destination="  "))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    w = (await withdraw(payments, user, 10)).withdrawal
    code, _ = await refusal(complete(payments, w.id, " "))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    code, _ = await refusal(reject(payments, w.id, ""))
    assert code == grpc.StatusCode.INVALID_ARGUMENT


async def test_the_database_refuses_a_paid_withdrawal_without_reference_and_any_change_after_close(payments):
    user = await funded(payments, 1_000)
    w = (await withdraw(payments, user, 10)).withdrawal
    async with payments.engine.connect() as conn:
        for statement in (
                "UPDATE withdrawals SET status = 'paid' WHERE id = CAST(:id AS uuid)",
                "UPDATE withdrawals SET amount = 0 WHERE id = CAST(:id AS uuid)",
                "DELETE FROM withdrawals WHERE id = CAST(:id AS uuid)"):
            try:
                async with conn.begin():
                    await conn.execute(sa.text(statement), {"id": w.id})
            except sa.exc.DBAPIError:
                continue
            raise AssertionError(f"the database accepted {statement}")
    await complete(payments, w.id)
    async with payments.engine.connect() as conn:
        try:
            async with conn.begin():
                await conn.execute(sa.text(
                    "UPDATE withdrawals SET status = 'pending', external_reference = NULL, close_transaction_id = NULL "
                    "WHERE id = CAST(:id AS uuid)"), {"id": w.id})
        except sa.exc.DBAPIError:
            pass
        else:
            raise AssertionError("the database reopened a paid withdrawal")


async def test_reconcile_passes_after_a_mix_of_payouts_escrows_and_deposits(payments):
    users = [await funded(payments, 2_000) for _ in range(4)]
    advertiser = new_id()
    await payments.deposit(advertiser, 5_000)
    targets = [new_id() for _ in range(4)]
    moves = [payments.hold(t, advertiser, 500, publisher_id=users[i].id) for i, t in enumerate(targets)]
    moves += [withdraw(payments, u, 700) for u in users for _ in range(3)]
    await asyncio.gather(*moves, return_exceptions=True)
    await payments.call("ReleaseEscrow", pb.ReleaseEscrowRequest(target_id=targets[0]))
    await payments.call("RefundEscrow", pb.RefundEscrowRequest(target_id=targets[1]))
    listed = await payments.call("ListWithdrawals", pb.ListWithdrawalsRequest(status="pending", limit=200), ADMIN)
    mine = [w for w in listed.withdrawals if w.user_id in {u.id for u in users}]
    await asyncio.gather(*(complete(payments, w.id) if i % 2 else reject(payments, w.id)
                           for i, w in enumerate(mine)), return_exceptions=True)
    await payments.assert_reconciled()
    for user in users:
        wallet = await payments.wallet(user.id)
        assert wallet.balance >= 0 and wallet.pending_payout >= 0
