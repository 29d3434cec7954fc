"""ListLedger: a wallet's own entries, newest first, with running balances."""
import grpc

from adtech.payments.v1 import payments_pb2 as pb
from common.auth import Actor
from tests.integration.payments.conftest import new_id, refusal


async def _entries(payments, user, limit=2):
    entries, cursor = [], ""
    while True:
        page = await payments.call("ListLedger", pb.ListLedgerRequest(user_id=user, limit=limit, cursor=cursor),
                                   Actor(user, "advertiser"))
        entries += page.entries
        cursor = page.next_cursor
        if not cursor:
            return entries


async def test_ledger_lists_own_entries_newest_first_with_running_balance(payments):
    user, target = new_id(), new_id()
    await payments.deposit(user, 1000, reference="first")
    await payments.hold(target, user, 300)
    await payments.call("RefundEscrow", pb.RefundEscrowRequest(target_id=target))
    await payments.deposit(user, 50)
    entries = await _entries(payments, user)
    assert [(e.kind, e.amount) for e in entries] == [
        ("deposit", 50), ("escrow_refund", 300), ("escrow_hold", -300), ("deposit", 1000)]
    oldest_first = list(reversed(entries))
    running = 0
    for entry in oldest_first:
        running += entry.amount
        assert entry.balance_after == running
    assert running == (await payments.wallet(user)).balance == 1050
    assert entries[1].reference == target and entries[3].reference == "first"


async def test_release_shows_on_the_publisher_ledger_net_of_fee(payments):
    advertiser, publisher, target = new_id(), new_id(), new_id()
    await payments.deposit(advertiser, 1000)
    await payments.hold(target, advertiser, 999, publisher_id=publisher)
    await payments.call("ReleaseEscrow", pb.ReleaseEscrowRequest(target_id=target))
    page = await payments.call("ListLedger", pb.ListLedgerRequest(user_id=publisher), Actor(publisher, "publisher"))
    assert [(e.kind, e.amount, e.balance_after) for e in page.entries] == [("escrow_release", 900, 900)]


async def test_ledger_of_another_user_is_forbidden(payments):
    code, _ = await refusal(payments.call("ListLedger", pb.ListLedgerRequest(user_id=new_id()),
                                          Actor(new_id(), "publisher")))
    assert code == grpc.StatusCode.PERMISSION_DENIED


async def test_bad_cursor_is_invalid(payments):
    code, _ = await refusal(payments.call("ListLedger", pb.ListLedgerRequest(user_id=new_id(), cursor="nope")))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
