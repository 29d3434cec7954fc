"""Random deposits, holds, releases, refunds and retries through the real
gRPC server on real PostgreSQL, against an in-memory oracle; Reconcile and
every wallet are checked after every step.

Hypothesis drives a synchronous state machine, so it runs in a worker thread
and sends each call to the test's event loop, where the channel lives."""
import asyncio
import dataclasses

import grpc
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from adtech.payments.v1 import payments_pb2 as pb
from common.grpc_errors import reason_of
from tests.integration.payments.conftest import new_id

FEE_BPS = 1000
amounts = st.integers(min_value=1, max_value=400)


@dataclasses.dataclass
class HoldAsked:
    target: str
    decision: str
    advertiser: int
    publisher: int
    amount: int


def machine_for(payments, loop):
    def run(coro):
        return asyncio.run_coroutine_threadsafe(coro, loop).result(30)

    def outcome(coro):
        """(reply, None) or (None, (status, reason))."""
        try:
            return run(coro), None
        except grpc.aio.AioRpcError as error:
            return None, (error.code(), reason_of(error))

    class Ledger(RuleBasedStateMachine):
        holds = Bundle("holds")
        keys = Bundle("keys")

        def __init__(self):
            super().__init__()
            self.users = [new_id() for _ in range(4)]
            self.balance = [0] * 4
            self.escrows: dict[str, dict] = {}  # target → {asked, status}
            self.refused: set[str] = set()  # decisions refused insufficient_funds
            self.deposits: dict[str, tuple] = {}  # key → (user, amount, transaction id)

        def held(self, user: int) -> int:
            return sum(e["asked"].amount for e in self.escrows.values()
                       if e["status"] == "held" and e["asked"].advertiser == user)

        @rule(target=keys, user=st.integers(0, 3), amount=amounts)
        def deposit(self, user, amount):
            key = new_id()
            reply = run(payments.deposit(self.users[user], amount, key))
            self.balance[user] += amount
            assert not reply.replayed and reply.wallet.balance == self.balance[user]
            self.deposits[key] = (user, amount, reply.transaction_id)
            return key

        @rule(key=keys, same_body=st.booleans())
        def retry_deposit(self, key, same_body):
            user, amount, tx = self.deposits[key]
            reply, refused = outcome(payments.deposit(self.users[user], amount if same_body else amount + 1, key))
            if same_body:
                assert reply.replayed and reply.transaction_id == tx
            else:
                assert refused == (grpc.StatusCode.ALREADY_EXISTS, "idempotency_key_reused")

        @rule(target=holds, advertiser=st.integers(0, 3), publisher=st.integers(0, 3), amount=amounts)
        def hold(self, advertiser, publisher, amount):
            asked = HoldAsked(new_id(), new_id(), advertiser, publisher, amount)
            self._send_hold(asked)
            return asked

        @rule(asked=holds, other_decision=st.booleans())
        def repeat_hold(self, asked, other_decision):
            self._send_hold(dataclasses.replace(asked, decision=new_id()) if other_decision else asked)

        def _send_hold(self, asked: HoldAsked):
            reply, refused = outcome(payments.hold(
                asked.target, self.users[asked.advertiser], asked.amount, decision_id=asked.decision,
                publisher_id=self.users[asked.publisher]))
            known = self.escrows.get(asked.target)
            if asked.decision in self.refused:
                assert refused == (grpc.StatusCode.FAILED_PRECONDITION, "insufficient_funds")
            elif known is not None and known["status"] != "held":
                assert refused == (grpc.StatusCode.FAILED_PRECONDITION, "escrow_closed")
            elif known is not None:
                if known["asked"] == asked:
                    assert reply.escrow.status == "held"
                else:
                    assert refused == (grpc.StatusCode.ALREADY_EXISTS, "escrow_exists")
            elif self.balance[asked.advertiser] < asked.amount:
                assert refused == (grpc.StatusCode.FAILED_PRECONDITION, "insufficient_funds")
                self.refused.add(asked.decision)
            else:
                assert reply.escrow.amount == asked.amount
                self.balance[asked.advertiser] -= asked.amount
                self.escrows[asked.target] = {"asked": asked, "status": "held"}

        @rule(asked=holds)
        def release(self, asked):
            reply, refused = outcome(payments.call("ReleaseEscrow", pb.ReleaseEscrowRequest(target_id=asked.target)))
            known = self.escrows.get(asked.target)
            if known is None:
                assert refused[0] == grpc.StatusCode.NOT_FOUND
            elif known["status"] == "refunded":
                assert refused == (grpc.StatusCode.FAILED_PRECONDITION, "escrow_closed")
            else:
                amount = known["asked"].amount
                assert reply.fee == amount * FEE_BPS // 10_000
                if known["status"] == "held":
                    self.balance[known["asked"].publisher] += amount - reply.fee
                    known["status"] = "released"

        @rule(asked=holds)
        def refund(self, asked):
            reply, refused = outcome(payments.call("RefundEscrow", pb.RefundEscrowRequest(target_id=asked.target)))
            known = self.escrows.get(asked.target)
            if known is None:
                assert not reply.HasField("escrow") and not reply.refunded
            elif known["status"] == "released":
                assert refused == (grpc.StatusCode.FAILED_PRECONDITION, "escrow_closed")
            else:
                assert reply.refunded == (known["status"] == "held")
                if reply.refunded:
                    self.balance[known["asked"].advertiser] += known["asked"].amount
                    known["status"] = "refunded"

        @invariant()
        def ledger_reconciles(self):
            report = run(payments.reconcile())
            assert report.ok, [(c.name, c.detail) for c in report.checks if not c.ok]

        @invariant()
        def wallets_match_the_oracle(self):
            for i, user in enumerate(self.users):
                wallet = run(payments.wallet(user))
                assert (wallet.balance, wallet.held) == (self.balance[i], self.held(i))

    return Ledger


async def test_ledger_matches_oracle_under_random_operations(payments):
    machine = machine_for(payments, asyncio.get_running_loop())
    config = settings(max_examples=20, stateful_step_count=25, deadline=None,
                      suppress_health_check=list(HealthCheck))
    await asyncio.to_thread(run_state_machine_as_test, machine, settings=config)
