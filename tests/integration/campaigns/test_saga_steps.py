"""ReserveTarget, ReleaseTarget, ApproveTarget, RejectTarget: DESIGN.md's
saga step rules 1, 2, 4, 5, each with a late duplicate that changes nothing."""
import grpc

from adtech.campaigns.v1 import campaigns_pb2 as pb
from tests.integration.campaigns.conftest import admin, new_id


async def test_reserve_moves_submitted_target_to_approving_for_the_decision(campaigns):
    _, _, target = await campaigns.submitted_target()
    decision = new_id()
    response = await campaigns.reserve(target.id, decision)
    assert response.snapshot.target.status == "approving"
    assert response.snapshot.reserved_by == decision
    assert await campaigns.status_of(target.id) == "approving"


async def test_approve_creates_one_post_job_at_the_scheduled_time(campaigns):
    _, _, target = await campaigns.submitted_target()
    decision = new_id()
    await campaigns.reserve(target.id, decision)
    response = await campaigns.approve(target.id, decision)
    assert response.target.status == "approved"
    assert response.post_job.status == "queued"
    assert response.post_job.execute_at == target.scheduled_at
    assert await campaigns.scalar("SELECT count(*) FROM post_jobs WHERE target_id = :t", t=target.id) == 1
