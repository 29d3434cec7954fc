"""Payments' pure rules: money, the release split, hold and close verdicts,
who may read what."""
import uuid

import pytest
from hypothesis import given, strategies as st

from common.auth import Actor
from common.errors import AlreadyExists, Forbidden, InvalidInput, PreconditionFailed
from common.steps import StepRecord
from services.payments import domain

T, D, A, P = (str(uuid.uuid4()) for _ in range(4))
TERMS = domain.HoldTerms(T, D, A, P, 500, "USD")


@given(st.integers(min_value=1, max_value=2**62), st.integers(min_value=0, max_value=10_000))
def test_release_parts_always_sum_to_the_amount(amount, bps):
    payout, fee = domain.release_split(amount, bps)
    assert payout + fee == amount and 0 <= fee <= amount


@pytest.mark.parametrize("amount, bps, fee", [(1000, 1000, 100), (999, 1000, 99), (9, 1000, 0), (1, 10_000, 1),
                                              (12345, 0, 0), (10_001, 1, 1)])
def test_platform_fee_is_floored(amount, bps, fee):
    assert domain.release_split(amount, bps) == (amount - fee, fee)


@pytest.mark.parametrize("value", [0, -1, 1.5, "10", True, None, 2**63])
def test_amount_must_be_positive_integer_minor_units(value):
    with pytest.raises(InvalidInput):
        domain.positive_amount(value)


@pytest.mark.parametrize("value, platform, expected", [("", "USD", "USD"), ("USD", "USD", "USD"),
                                                        ("", "EUR", "EUR"), ("EUR", "EUR", "EUR")])
def test_currency_is_the_platforms_when_empty_or_named(value, platform, expected):
    assert domain.currency_of(value, platform) == expected


@pytest.mark.parametrize("value, platform", [("EUR", "USD"), ("USD", "EUR"), ("XTS", "USD")])
def test_a_currency_other_than_the_platforms_is_not_supported(value, platform):
    with pytest.raises(PreconditionFailed) as refused:
        domain.currency_of(value, platform)
    assert refused.value.code == "currency_not_supported"


def test_a_wallet_left_in_another_currency_stays_readable():
    assert domain.currency_to_read("EUR", "USD") == "EUR" and domain.currency_to_read("", "USD") == "USD"


@pytest.mark.parametrize("value", ["usd", "US", "EURO", "12A"])
def test_currency_must_be_iso_code(value):
    with pytest.raises(InvalidInput):
        domain.currency_of(value)


@pytest.mark.parametrize("key", ["", "   ", "k" * 201])
def test_idempotency_key_is_required_and_bounded(key):
    with pytest.raises(InvalidInput):
        domain.idempotency_key(key)


def test_deposit_fingerprint_depends_on_every_field():
    base = domain.deposit_fingerprint(A, 100, "USD", "r")
    assert base == domain.deposit_fingerprint(A, 100, "USD", "r")
    others = [domain.deposit_fingerprint(P, 100, "USD", "r"), domain.deposit_fingerprint(A, 101, "USD", "r"),
              domain.deposit_fingerprint(A, 100, "EUR", "r"), domain.deposit_fingerprint(A, 100, "USD", "")]
    assert base not in others


def _escrow(status="held", **changes):
    fields = {**TERMS.__dict__, **changes}
    return domain.EscrowState(domain.HoldTerms(**fields), status)


REFUSED = StepRecord("refused", {"code": "insufficient_funds", "message": "Insufficient funds: balance 1, required 500"}, T)
HELD_RECORD = StepRecord("held", {}, T)


@pytest.mark.parametrize("recorded, escrow, verdict", [
    (None, None, domain.PROCEED),
    (HELD_RECORD, _escrow(), domain.SAME_ESCROW),
    (None, _escrow(), domain.SAME_ESCROW),
])
def test_hold_verdicts(recorded, escrow, verdict):
    assert domain.judge_hold(TERMS, recorded, escrow) == verdict


@pytest.mark.parametrize("recorded, escrow, error, code", [
    (REFUSED, None, domain.InsufficientFunds, "insufficient_funds"),
    (REFUSED, _escrow(decision_id=str(uuid.uuid4())), domain.InsufficientFunds, "insufficient_funds"),
    (None, _escrow(decision_id=str(uuid.uuid4())), domain.EscrowExists, "escrow_exists"),
    (HELD_RECORD, _escrow(amount=501), domain.EscrowExists, "escrow_exists"),
    (None, _escrow(publisher_id=str(uuid.uuid4())), domain.EscrowExists, "escrow_exists"),
    (HELD_RECORD, _escrow("refunded"), domain.EscrowClosed, "escrow_closed"),
    (None, _escrow("released"), domain.EscrowClosed, "escrow_closed"),
    (StepRecord("held", {}, str(uuid.uuid4())), None, AlreadyExists, "decision_reused"),
])
def test_hold_refusals(recorded, escrow, error, code):
    with pytest.raises(error) as caught:
        domain.judge_hold(TERMS, recorded, escrow)
    assert caught.value.code == code


def test_recorded_insufficient_funds_answers_with_the_recorded_message():
    with pytest.raises(domain.InsufficientFunds, match="balance 1, required 500"):
        domain.judge_hold(TERMS, REFUSED, None)


@pytest.mark.parametrize("status, wanted, verdict", [
    ("held", "released", domain.PROCEED), ("held", "refunded", domain.PROCEED),
    ("released", "released", domain.SAME_ESCROW), ("refunded", "refunded", domain.SAME_ESCROW),
])
def test_close_verdicts(status, wanted, verdict):
    assert domain.judge_close(T, status, wanted) == verdict


@pytest.mark.parametrize("status, wanted, error", [
    ("refunded", "released", domain.EscrowClosed), ("released", "refunded", domain.EscrowClosed),
    (None, "released", domain.EscrowNotFound),
])
def test_close_refusals(status, wanted, error):
    with pytest.raises(error):
        domain.judge_close(T, status, wanted)


@pytest.mark.parametrize("actor, allowed", [
    (Actor(A, "advertiser"), True), (Actor(P, "advertiser"), False),
    (Actor(str(uuid.uuid4()), "admin"), True), (Actor(str(uuid.uuid4()), "system"), True),
])
def test_wallet_is_read_by_owner_admin_or_system(actor, allowed):
    if allowed:
        domain.assert_may_read_wallet(actor, A)
    else:
        with pytest.raises(Forbidden):
            domain.assert_may_read_wallet(actor, A)


@pytest.mark.parametrize("actor, allowed", [
    (Actor(A, "advertiser"), True), (Actor(P, "publisher"), True), (Actor(str(uuid.uuid4()), "publisher"), False),
    (Actor(str(uuid.uuid4()), "admin"), True), (Actor(str(uuid.uuid4()), "system"), True),
])
def test_escrow_is_read_by_its_parties_admin_or_system(actor, allowed):
    if allowed:
        domain.assert_may_read_escrow(actor, A, P)
    else:
        with pytest.raises(Forbidden):
            domain.assert_may_read_escrow(actor, A, P)


def test_credit_beyond_int64_is_refused():
    assert domain.credited(2**63 - 2, 1) == 2**63 - 1
    with pytest.raises(InvalidInput):
        domain.credited(2**63 - 1, 1)


@given(st.uuids())
def test_ledger_shard_is_within_the_shards_and_the_same_for_a_repeat(key):
    shard = domain.ledger_shard(str(key))
    assert 0 <= shard < domain.LEDGER_SHARDS and shard == domain.ledger_shard(str(key).upper())


def test_ledger_shards_spread_moves_over_every_shard():
    hits = {domain.ledger_shard(str(uuid.uuid4())) for _ in range(2_000)}
    assert hits == set(range(domain.LEDGER_SHARDS))


WITHDRAWAL = domain.WithdrawalTerms(P, 300, "USD", "IBAN DE00 1")


def test_a_withdrawal_replay_must_ask_for_exactly_the_same():
    domain.judge_withdrawal_replay(WITHDRAWAL, domain.WithdrawalTerms(P, 300, "USD", "IBAN DE00 1"))
    for other in (domain.WithdrawalTerms(P, 301, "USD", "IBAN DE00 1"),
                  domain.WithdrawalTerms(P, 300, "EUR", "IBAN DE00 1"),
                  domain.WithdrawalTerms(P, 300, "USD", "IBAN DE00 2")):
        with pytest.raises(domain.IdempotencyKeyReused):
            domain.judge_withdrawal_replay(other, WITHDRAWAL)


@pytest.mark.parametrize("status, refusal", [(None, domain.WithdrawalNotFound), ("paid", domain.WithdrawalNotPending),
                                             ("rejected", domain.WithdrawalNotPending)])
def test_a_close_that_moved_nothing_is_not_found_or_not_pending(status, refusal):
    with pytest.raises(refusal):
        domain.judge_withdrawal_close(T, status)


def test_withdrawal_texts_are_required_bounded_and_without_nul():
    assert domain.text("IBAN", "destination", 10) == "IBAN"
    for value in ("", "   ", "a\x00b", "x" * 11):
        with pytest.raises(InvalidInput):
            domain.text(value, "destination", 10)


def test_a_status_filter_is_empty_or_a_withdrawal_status():
    assert [domain.withdrawal_status(s) for s in ("", "pending", "paid", "rejected")] == \
        ["", "pending", "paid", "rejected"]
    with pytest.raises(InvalidInput):
        domain.withdrawal_status("lost")


def test_withdrawals_are_listed_by_their_owner_or_an_admin():
    domain.assert_may_list_withdrawals(Actor(P, "publisher"), P)
    domain.assert_may_list_withdrawals(Actor(A, "admin"), "")
    domain.assert_may_list_withdrawals(Actor(A, "admin"), P)
    for actor, user in ((Actor(A, "publisher"), P), (Actor(P, "publisher"), ""), (Actor(A, "advertiser"), "")):
        with pytest.raises(Forbidden):
            domain.assert_may_list_withdrawals(actor, user)
