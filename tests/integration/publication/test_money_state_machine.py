"""Random sequences of everything that happens after approval (a post falls
due and is published, time passes and proof checks run, the post is
deleted from the channel, the advertiser cancels, the publisher withdraws
and an admin pays out or rejects) keep the money right, against the real
campaigns and payments services and the sandbox. After every step, once
campaigns' outbox has drained:
- payments reconciles (its Reconcile RPC);
- an advertiser's balance + held + what was released from its escrow
  (to the publisher and the fee) == what it deposited;
- a publisher's balance + pending payout + paid out == what its escrows
  released to it (the price less the fee);
- an escrow is held iff its target is approved or published, released iff
  completed, refunded iff failed or cancelled;
- a channel never holds more than one post of a target; no balance is
  negative.

Hypothesis drives a synchronous state machine, so it runs in a worker
thread and sends each call to the test's event loop."""
import asyncio
import uuid

import grpc
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from adtech.campaigns.v1 import campaigns_pb2 as cpb
from adtech.payments.v1 import payments_pb2 as ppb
from common.auth import Actor, acting_as
from tests.harness import eventually
from tests.integration.payments.conftest import ADMIN
from tests.integration.publication.conftest import CHECKS, PAYOUT, PRICE, RETENTION_S

TARGETS = 2
ESCROW_OF_TARGET = {"approved": "held", "published": "held", "completed": "released", "failed": "refunded",
                    "cancelled": "refunded"}
JOB_OF_TARGET = {"approved": {"queued"}, "published": {"published"}, "completed": {"verified"},
                 "failed": {"failed"}, "cancelled": {"cancelled"}}
# A cancel once the job left the queue: 409 post_job_started (ABORTED);
# from a status with no cancel move: 400 (FAILED_PRECONDITION).
CANCEL_REFUSALS = {grpc.StatusCode.ABORTED, grpc.StatusCode.FAILED_PRECONDITION}

pytestmark = pytest.mark.slow


def machine_for(market, worker, loop):
    def run(coro, timeout: float = 30):
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout)

    async def as_actor(actor, method, request):
        with acting_as(actor):
            return await method(request)

    class AfterApproval(RuleBasedStateMachine):
        @initialize()
        def booked_targets(self):
            self.booked = run(book(TARGETS))
            self.paid_out = [0] * TARGETS  # per publisher: withdrawals an admin completed
            self.pending = [[] for _ in range(TARGETS)]  # per publisher: withdrawal ids pending

        # ---- what happens
        @rule(i=st.integers(0, TARGETS - 1))
        def the_post_falls_due(self, i):
            run(market.its_time_comes(self.booked[i]))
            run(worker.run_once())

        @rule(i=st.integers(0, TARGETS - 1))
        def the_post_falls_due_and_its_window_passes(self, i):
            self.the_post_falls_due(i)
            self.the_retention_window_passes()

        @rule(i=st.integers(0, TARGETS - 1))
        def the_post_falls_due_and_is_deleted_within_its_window(self, i):
            self.the_post_falls_due(i)
            self.the_channel_deletes_the_post(i)
            self.the_retention_window_passes()

        @rule()
        def a_moment_passes_and_due_checks_run(self):
            run(asyncio.sleep(RETENTION_S / 4))
            run(worker.run_once())

        @rule()
        def the_retention_window_passes(self):
            run(asyncio.sleep(RETENTION_S + 0.02))
            run(market.passes(worker, CHECKS + 1))

        @rule(i=st.integers(0, TARGETS - 1))
        def the_channel_deletes_the_post(self, i):
            for post in run(market.posts(self.booked[i])):
                if not post["deleted"]:
                    run(market.sandbox.delete(self.booked[i].handle, post["message_id"]))

        @rule(i=st.integers(0, TARGETS - 1), minds_changed=st.booleans())
        def the_advertiser_cancels(self, i, minds_changed):
            if not minds_changed:  # halves how often a target is cancelled, so more run their course
                return
            booked = self.booked[i]
            try:
                run(as_actor(booked.advertiser, market.campaigns.stub.CancelTarget, cpb.CancelTargetRequest(
                    campaign_id=booked.campaign.id, target_id=booked.target.id)))
            except grpc.aio.AioRpcError as error:
                assert error.code() in CANCEL_REFUSALS, error

        @rule(pick=st.integers(0, TARGETS - 1), share=st.sampled_from([1, 2]),
              then=st.sampled_from(["pay_out", "reject", "leave_pending"]))
        def a_publisher_with_earnings_withdraws(self, pick, share, then):
            balances = [run(market.wallet(booked.publisher)).balance for booked in self.booked]
            earning = [i for i, balance in enumerate(balances) if balance > 0]
            if not earning:
                return
            i = earning[pick % len(earning)]
            publisher, balance = self.booked[i].publisher, balances[i]
            withdrawal = run(as_actor(Actor(publisher.id, "publisher"), market.payments.stub.RequestWithdrawal,
                                      ppb.RequestWithdrawalRequest(amount=max(1, balance // share),
                                                                   destination="DE89 3704 0044 0532 0130 00",
                                                                   idempotency_key=uuid.uuid4().hex))).withdrawal
            self.pending[i].append(withdrawal)
            if then != "leave_pending":
                self.an_admin_settles_a_withdrawal(i, pay=then == "pay_out")

        @rule(i=st.integers(0, TARGETS - 1), pay=st.booleans())
        def an_admin_settles_a_withdrawal(self, i, pay):
            if not self.pending[i]:
                return
            withdrawal = self.pending[i].pop(0)
            if pay:
                run(as_actor(ADMIN, market.payments.stub.CompleteWithdrawal, ppb.CompleteWithdrawalRequest(
                    withdrawal_id=withdrawal.id, external_reference=f"wire-{withdrawal.id[:8]}")))
                self.paid_out[i] += withdrawal.amount
            else:
                run(as_actor(ADMIN, market.payments.stub.RejectWithdrawal, ppb.RejectWithdrawalRequest(
                    withdrawal_id=withdrawal.id, reason="the IBAN bounced")))

        # ---- what always holds
        @invariant()
        def money_adds_up_once_the_outbox_drains(self):
            if not hasattr(self, "booked"):
                return
            run(eventually(outbox_drained, timeout=15))
            report = run(market.payments.reconcile())
            assert report.ok, [(c.name, c.detail) for c in report.checks if not c.ok]
            for i, booked in enumerate(self.booked):
                status = run(market.target_status(booked))
                job = run(market.job(booked))
                escrow = run(market.escrow(booked))
                advertiser, publisher = run(market.wallet(booked.advertiser)), run(market.wallet(booked.publisher))
                assert job.status in JOB_OF_TARGET[status], (status, job.status)
                assert escrow.status == ESCROW_OF_TARGET[status], (status, escrow.status)
                released = escrow.status == "released"
                assert advertiser.balance + advertiser.held + (PRICE if released else 0) == PRICE
                assert advertiser.held == (PRICE if escrow.status == "held" else 0)
                assert publisher.balance + publisher.pending_payout + self.paid_out[i] == (PAYOUT if released else 0)
                assert min(advertiser.balance, publisher.balance, publisher.pending_payout) >= 0
                posts = run(market.posts(booked))
                assert len(posts) <= 1, posts
                assert (len(posts) == 1) == (job.message_id is not None), (posts, job.message_id)

    async def book(count: int):
        return await asyncio.gather(*(market.booked() for _ in range(count)))

    async def outbox_drained() -> bool:
        return await market.campaigns.scalar("SELECT count(*) FROM outbox_messages WHERE status <> 'delivered'") == 0

    return AfterApproval


async def test_random_lives_of_approved_targets_keep_the_money_right(market):
    worker = market.worker()
    try:
        machine = machine_for(market, worker, asyncio.get_running_loop())
        config = settings(max_examples=15, stateful_step_count=12, deadline=None,
                          suppress_health_check=list(HealthCheck))
        await asyncio.to_thread(run_state_machine_as_test, machine, settings=config)
    finally:
        await worker.holder.close()
