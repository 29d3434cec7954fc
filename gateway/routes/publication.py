"""Publication, seen from outside: a channel's posts (its publisher, admins),
every post job (admins), the channel owner's answer to a job awaiting it,
and an admin's verdict on a job in needs_review."""
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import Field

from adtech.campaigns.v1 import campaigns_pb2 as pb
from gateway import views
from gateway.deps import Admin, CampaignsApi, CurrentUser, Page, Publisher
from gateway.inputs import ChannelId, DeclineReason, InputModel, MessageUrl, PostJobId, RejectionReason

router = APIRouter(tags=["publication"])

JobStatus = Annotated[
    Literal["", "awaiting_publisher", "queued", "publishing", "published", "verified", "cancelled", "failed",
            "needs_review", "declined", "expired"],
    Query(description="Only post jobs of this status; all when empty")]


class PublishedOutcome(InputModel):
    """The post is out: its link (the proof checks then run as usual)."""
    outcome: Literal["published"]
    message_url: MessageUrl


class RetryOutcome(InputModel):
    """Publish again at the next pass (a no-show once its deadline passed)."""
    outcome: Literal["retry"]


class FailedOutcome(InputModel):
    """It will not be published: the job and the target fail, the advertiser is refunded."""
    outcome: Literal["failed"]
    reason: RejectionReason


class Declination(InputModel):
    reason: DeclineReason


Resolution = Annotated[PublishedOutcome | RetryOutcome | FailedOutcome, Field(discriminator="outcome")]


@router.get("/api/channels/{channelId}/posts", response_model=views.PostJobPage)
async def channel_posts(channel_id: ChannelId, user: CurrentUser, campaigns: CampaignsApi, page: Page,
                        status: JobStatus = "") -> views.PostJobPage:
    """The channel's post jobs, soonest first (its owner, admins)."""
    reply = await campaigns.ListPostJobs(pb.ListPostJobsRequest(
        channel_id=str(channel_id), status=status, limit=page.limit, cursor=page.cursor))
    return views.PostJobPage(items=[views.post_job_item(i) for i in reply.items], next_cursor=views.next_cursor(reply))


@router.get("/api/post-jobs", response_model=views.PostJobPage)
async def post_jobs(user: Admin, campaigns: CampaignsApi, page: Page, status: JobStatus = "") -> views.PostJobPage:
    """Every channel's post jobs, soonest first."""
    reply = await campaigns.ListPostJobs(pb.ListPostJobsRequest(status=status, limit=page.limit, cursor=page.cursor))
    return views.PostJobPage(items=[views.post_job_item(i) for i in reply.items], next_cursor=views.next_cursor(reply))


@router.post("/api/post-jobs/{postJobId}/resolve", response_model=views.PostJob)
async def resolve_post_job(post_job_id: PostJobId, body: Resolution, user: Admin,
                           campaigns: CampaignsApi) -> views.PostJob:
    """An admin resolves a job in needs_review (its worker died mid-call)."""
    reply = await campaigns.ResolvePostJob(pb.ResolvePostJobRequest(
        post_job_id=str(post_job_id), outcome=body.outcome, message_url=getattr(body, "message_url", ""),
        reason=getattr(body, "reason", "")))
    return views.post_job(reply.post_job)


@router.post("/api/post-jobs/{postJobId}/accept", response_model=views.PostJob)
async def accept_post_job(post_job_id: PostJobId, user: Publisher, campaigns: CampaignsApi) -> views.PostJob:
    """The channel's owner agrees to publish a job awaiting the answer
    (`awaiting_publisher` → `queued`), before its `acceptBy`."""
    reply = await campaigns.AcceptPostJob(pb.AcceptPostJobRequest(post_job_id=str(post_job_id)))
    return views.post_job(reply.post_job)


@router.post("/api/post-jobs/{postJobId}/decline", response_model=views.PostJob)
async def decline_post_job(post_job_id: PostJobId, body: Declination, user: Publisher,
                           campaigns: CampaignsApi) -> views.PostJob:
    """The channel's owner refuses a job awaiting the answer, with a reason
    (`declined`): the target is declined and the advertiser refunded."""
    reply = await campaigns.DeclinePostJob(pb.DeclinePostJobRequest(post_job_id=str(post_job_id), reason=body.reason))
    return views.post_job(reply.post_job)
