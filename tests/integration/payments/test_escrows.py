"""Hold, release, refund and read escrows, keyed on the target id."""
import grpc

from adtech.payments.v1 import payments_pb2 as pb
from common.auth import Actor
from tests.integration.payments.conftest import new_id, refusal


async def _funded(payments, amount=1000):
    advertiser = new_id()
    await payments.deposit(advertiser, amount)
    return advertiser


async def test_hold_moves_price_from_spendable_into_escrow(payments):
    advertiser, target, decision = await _funded(payments), new_id(), new_id()
    escrow = (await payments.hold(target, advertiser, 400, decision_id=decision)).escrow
    assert (escrow.target_id, escrow.decision_id, escrow.status, escrow.amount) == (target, decision, "held", 400)
    wallet = await payments.wallet(advertiser)
    assert (wallet.balance, wallet.held) == (600, 400)
    await payments.assert_reconciled()


async def test_second_hold_returns_same_escrow(payments):
    advertiser, target, decision, publisher = await _funded(payments), new_id(), new_id(), new_id()
    first = (await payments.hold(target, advertiser, 400, decision_id=decision, publisher_id=publisher)).escrow
    again = (await payments.hold(target, advertiser, 400, decision_id=decision, publisher_id=publisher)).escrow
    assert again.id == first.id
    assert (await payments.wallet(advertiser)).balance == 600


async def test_hold_by_another_decision_is_already_exists(payments):
    advertiser, target, publisher = await _funded(payments), new_id(), new_id()
    await payments.hold(target, advertiser, 400, publisher_id=publisher)
    code, reason = await refusal(payments.hold(target, advertiser, 400, publisher_id=publisher))
    assert (code, reason) == (grpc.StatusCode.ALREADY_EXISTS, "escrow_exists")


async def test_hold_on_other_terms_is_already_exists(payments):
    advertiser, target, decision, publisher = await _funded(payments), new_id(), new_id(), new_id()
    await payments.hold(target, advertiser, 400, decision_id=decision, publisher_id=publisher)
    code, reason = await refusal(payments.hold(target, advertiser, 401, decision_id=decision, publisher_id=publisher))
    assert (code, reason) == (grpc.StatusCode.ALREADY_EXISTS, "escrow_exists")
    assert (await payments.wallet(advertiser)).balance == 600


async def test_hold_without_enough_money_is_insufficient_funds_and_moves_nothing(payments):
    advertiser, target = await _funded(payments, 100), new_id()
    with_details = payments.hold(target, advertiser, 101)
    code, reason = await refusal(with_details)
    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "insufficient_funds")
    wallet = await payments.wallet(advertiser)
    assert (wallet.balance, wallet.held) == (100, 0)
    assert await payments.scalar("SELECT count(*) FROM escrows WHERE target_id = CAST(:t AS uuid)", t=target) == 0
    await payments.assert_reconciled()


async def test_insufficient_funds_message_names_balance_and_price(payments):
    advertiser = await _funded(payments, 100)
    try:
        await payments.hold(new_id(), advertiser, 250)
    except grpc.aio.AioRpcError as error:
        assert error.details() == "Insufficient funds: balance 100, required 250"
    else:
        raise AssertionError("hold should be refused")


async def test_release_pays_publisher_less_floored_fee(payments):
    advertiser, publisher, target = await _funded(payments), new_id(), new_id()
    await payments.hold(target, advertiser, 999, publisher_id=publisher)
    reply = await payments.call("ReleaseEscrow", pb.ReleaseEscrowRequest(target_id=target))
    assert (reply.escrow.status, reply.fee) == ("released", 99)
    assert (await payments.wallet(publisher)).balance == 900
    wallet = await payments.wallet(advertiser)
    assert (wallet.balance, wallet.held) == (1, 0)
    await payments.assert_reconciled()


async def test_second_release_returns_same_result_without_second_payment(payments):
    advertiser, publisher, target = await _funded(payments), new_id(), new_id()
    await payments.hold(target, advertiser, 500, publisher_id=publisher)
    first = await payments.call("ReleaseEscrow", pb.ReleaseEscrowRequest(target_id=target))
    again = await payments.call("ReleaseEscrow", pb.ReleaseEscrowRequest(target_id=target))
    assert (again.escrow.id, again.fee, again.escrow.status) == (first.escrow.id, 50, "released")
    assert (await payments.wallet(publisher)).balance == 450


async def test_release_of_unknown_target_is_not_found(payments):
    code, _ = await refusal(payments.call("ReleaseEscrow", pb.ReleaseEscrowRequest(target_id=new_id())))
    assert code == grpc.StatusCode.NOT_FOUND


async def test_release_after_refund_is_escrow_closed(payments):
    advertiser, target = await _funded(payments), new_id()
    await payments.hold(target, advertiser, 500)
    await payments.call("RefundEscrow", pb.RefundEscrowRequest(target_id=target))
    code, reason = await refusal(payments.call("ReleaseEscrow", pb.ReleaseEscrowRequest(target_id=target)))
    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "escrow_closed")


async def test_refund_returns_money_to_advertiser(payments):
    advertiser, target = await _funded(payments), new_id()
    await payments.hold(target, advertiser, 500)
    reply = await payments.call("RefundEscrow", pb.RefundEscrowRequest(target_id=target))
    assert (reply.refunded, reply.escrow.status) == (True, "refunded")
    wallet = await payments.wallet(advertiser)
    assert (wallet.balance, wallet.held) == (1000, 0)
    await payments.assert_reconciled()


async def test_refund_of_target_without_escrow_succeeds_with_nothing(payments):
    reply = await payments.call("RefundEscrow", pb.RefundEscrowRequest(target_id=new_id()))
    assert not reply.HasField("escrow") and not reply.refunded


async def test_refund_after_release_is_escrow_closed(payments):
    advertiser, target = await _funded(payments), new_id()
    await payments.hold(target, advertiser, 500)
    await payments.call("ReleaseEscrow", pb.ReleaseEscrowRequest(target_id=target))
    code, reason = await refusal(payments.call("RefundEscrow", pb.RefundEscrowRequest(target_id=target)))
    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "escrow_closed")


async def test_escrow_moves_are_for_system_or_admin_only(payments):
    user = new_id()
    calls = [("HoldEscrow", pb.HoldEscrowRequest(target_id=new_id(), decision_id=new_id(), advertiser_id=user,
                                                 publisher_id=new_id(), amount=1, currency="USD")),
             ("ReleaseEscrow", pb.ReleaseEscrowRequest(target_id=new_id())),
             ("RefundEscrow", pb.RefundEscrowRequest(target_id=new_id())),
             ("ListEscrows", pb.ListEscrowsRequest()), ("Reconcile", pb.ReconcileRequest())]
    for method, request in calls:
        code, _ = await refusal(payments.call(method, request, Actor(user, "advertiser")))
        assert code == grpc.StatusCode.PERMISSION_DENIED, method


async def test_escrow_is_visible_to_its_parties_only(payments):
    advertiser, publisher, target = await _funded(payments), new_id(), new_id()
    await payments.hold(target, advertiser, 10, publisher_id=publisher)
    request = pb.GetEscrowRequest(target_id=target)
    for actor in (Actor(advertiser, "advertiser"), Actor(publisher, "publisher"), Actor(new_id(), "admin")):
        assert (await payments.call("GetEscrow", request, actor)).escrow.target_id == target
    code, _ = await refusal(payments.call("GetEscrow", request, Actor(new_id(), "publisher")))
    assert code == grpc.StatusCode.PERMISSION_DENIED
    code, _ = await refusal(payments.call("GetEscrow", pb.GetEscrowRequest(target_id=new_id())))
    assert code == grpc.StatusCode.NOT_FOUND


async def test_list_escrows_pages_newest_first(payments):
    advertiser = await _funded(payments)
    targets = [new_id() for _ in range(3)]
    for target in targets:
        await payments.hold(target, advertiser, 1)
    seen, cursor = [], ""
    while True:
        page = await payments.call("ListEscrows", pb.ListEscrowsRequest(limit=2, cursor=cursor))
        seen += [e.target_id for e in page.escrows]
        cursor = page.next_cursor
        if not cursor:
            break
    assert len(seen) == len(set(seen))
    assert [t for t in seen if t in targets] == list(reversed(targets))


async def test_malformed_ids_and_amounts_are_invalid(payments):
    bad = [pb.HoldEscrowRequest(target_id="x", decision_id=new_id(), advertiser_id=new_id(), publisher_id=new_id(),
                                amount=1),
           pb.HoldEscrowRequest(target_id=new_id(), decision_id=new_id(), advertiser_id=new_id(),
                                publisher_id=new_id(), amount=0)]
    for request in bad:
        code, _ = await refusal(payments.call("HoldEscrow", request))
        assert code == grpc.StatusCode.INVALID_ARGUMENT
