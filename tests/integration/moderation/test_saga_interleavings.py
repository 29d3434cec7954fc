"""Random interleavings of one target's approve with everything that can
race it (a second approve, reject, pause, resume, campaign cancel, target
cancel, a deposit, late duplicates of any saga step), against the real
services. After every step the guarantees that hold at every instant are
checked; at the end, once the outboxes drain, every cross-service check.

Hypothesis drives a synchronous state machine, so it runs in a worker thread
and sends each call to the test's event loop, where the stubs live."""
import asyncio

import grpc
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule, run_state_machine_as_test

from adtech.campaigns.v1 import campaigns_pb2
from adtech.moderation.v1 import moderation_pb2
from adtech.payments.v1 import payments_pb2
from common.auth import acting_as
from tests.integration.moderation.conftest import assert_consistent
from tests.integration.moderation.test_saga_faults import Recording, saga_relay

PRICE = 1_000
S = grpc.StatusCode
# What each action may be refused with, whatever the interleaving (a refusal
# outside these is a bug even when no guarantee broke):
# - approve without waiting: it starts or joins the saga; a start that kept
#   losing to approves ending meanwhile answers 409 (ABORTED), and a repeat
#   of an approve whose target was cancelled since answers 400 with the
#   target's status (FAILED_PRECONDITION);
# - reject: 400 when the target is not submitted, 409 while it is being
#   approved (or a concurrent reject changed), 503 while campaigns has not
#   carried it out within the wait;
# - the campaign's own moves: 400 from a status the table has no move from,
#   403 for a move only an admin may make (paused → cancelled), 409 when a
#   concurrent change won;
# - cancelling or resubmitting the target: 400 from a status it cannot leave
#   that way, 409 while it is being approved or a concurrent change won.
APPROVE_REFUSALS = {S.ABORTED, S.FAILED_PRECONDITION}
REJECT_REFUSALS = {S.FAILED_PRECONDITION, S.ABORTED, S.UNAVAILABLE}
CAMPAIGN_REFUSALS = {S.FAILED_PRECONDITION, S.PERMISSION_DENIED, S.ABORTED}
TARGET_REFUSALS = {S.FAILED_PRECONDITION, S.ABORTED}


def machine_for(stack, world, recording, loop):
    def run(coro):
        return asyncio.run_coroutine_threadsafe(coro, loop).result(30)

    def attempt(coro, refusals: set[grpc.StatusCode]):
        """The call's answer, or the status of its refusal, which must be
        one of the refusals the call is designed to answer with (never
        INTERNAL or UNKNOWN, nor one the state machine cannot explain)."""
        try:
            return run(coro)
        except grpc.aio.AioRpcError as error:
            assert error.code() in refusals, error
            return error.code()

    async def as_actor(actor, method, request):
        with acting_as(actor):
            return await method(request)

    class Interleavings(RuleBasedStateMachine):
        @initialize(funds=st.sampled_from([0, PRICE // 2, PRICE, 3 * PRICE]))
        def a_submitted_target(self, funds):
            self.advertiser, self.campaign, self.target = run(world.ready_to_approve(price=PRICE, funds=funds))
            self.cancelled = False

        @rule()
        def approve(self):
            attempt(as_actor(world.admin, world.moderation.Approve,
                             moderation_pb2.ApproveRequest(target_id=self.target.id, wait_ms=0)), APPROVE_REFUSALS)

        @rule()
        def reject(self):
            attempt(as_actor(world.admin, world.moderation.Reject,
                             moderation_pb2.RejectRequest(target_id=self.target.id, reason="interleaved")),
                    REJECT_REFUSALS)

        @rule(action=st.sampled_from(["pause", "resume", "cancel"]))
        def campaign_moves(self, action):
            result = attempt(as_actor(self.advertiser, world.campaigns.ChangeCampaignStatus,
                                      campaigns_pb2.ChangeCampaignStatusRequest(campaign_id=self.campaign.id, action=action)),
                             CAMPAIGN_REFUSALS)
            self.cancelled |= action == "cancel" and not isinstance(result, grpc.StatusCode)

        @rule()
        def cancel_target(self):
            attempt(as_actor(self.advertiser, world.campaigns.CancelTarget,
                             campaigns_pb2.CancelTargetRequest(campaign_id=self.campaign.id, target_id=self.target.id)),
                    TARGET_REFUSALS)

        @precondition(lambda self: not self.cancelled)
        @rule()
        def resubmit(self):
            attempt(as_actor(self.advertiser, world.campaigns.SubmitTarget,
                             campaigns_pb2.SubmitTargetRequest(campaign_id=self.campaign.id, target_id=self.target.id)),
                    TARGET_REFUSALS)

        @rule()
        def deposit(self):
            run(world.fund(self.advertiser, PRICE))

        @rule()
        def late_duplicate_of_every_step_so_far(self):
            run(recording.replay())

        @rule()
        def let_sagas_run(self):
            run(asyncio.sleep(0.05))

        @invariant()
        def approved_target_has_its_escrow_and_post_job(self):
            target = run(as_actor(self.advertiser, world.campaigns.GetTarget, campaigns_pb2.GetTargetRequest(
                campaign_id=self.campaign.id, target_id=self.target.id))).target
            if target.status == "approved":
                escrow = run(as_actor(world.admin, world.payments.GetEscrow,
                                      payments_pb2.GetEscrowRequest(target_id=self.target.id))).escrow
                assert escrow.status == "held" and escrow.amount == PRICE and target.post_job.id

        @invariant()
        def ledger_balances(self):
            report = run(as_actor(world.admin, world.payments.Reconcile, payments_pb2.ReconcileRequest()))
            assert report.ok, [(c.name, c.detail) for c in report.checks if not c.ok]

        def teardown(self):
            if hasattr(self, "target"):
                run(assert_consistent(stack))

    return Interleavings


async def test_random_interleavings_keep_every_guarantee(stack, world):
    recording = Recording(saga_relay(stack), times=1)
    try:
        machine = machine_for(stack, world, recording, asyncio.get_running_loop())
        config = settings(max_examples=20, stateful_step_count=12, deadline=None,
                          suppress_health_check=list(HealthCheck))
        await asyncio.to_thread(run_state_machine_as_test, machine, settings=config)
    finally:
        recording.restore()
