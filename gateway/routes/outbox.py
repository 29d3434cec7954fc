"""Outbox dead letters (admins): the messages a service's relay gave up on
after its last attempt, and a retry of one, through the ops RPCs every
outbox-owning service serves (as `adtech outbox list/retry` calls them)."""
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query

from adtech.ops.v1 import ops_pb2
from common.errors import InvalidInput
from common.pagination import decode_cursor, encode_cursor
from common.reasons import Reason
from gateway import views
from gateway.deps import Admin, AllServices, Page
from gateway.errors import ApiError

router = APIRouter(prefix="/api/outbox", tags=["outbox"])

# The services with an outbox, in the order a list without ?service= walks them.
OUTBOX_SERVICES = ("campaigns", "moderation")
MAX_MESSAGE_ID = 2**63 - 1

OutboxService = Literal["campaigns", "moderation"]
ServiceFilter = Annotated[Literal["", "campaigns", "moderation"],
                          Query(description="Only this service's dead letters; every outbox's when empty")]
ServicePath = Annotated[OutboxService, Path(description="The service whose outbox holds the message")]
MessageId = Annotated[int, Path(alias="messageId", ge=1, le=MAX_MESSAGE_ID, description="The message's id in that outbox")]


@router.get("/dead-letters", response_model=views.DeadLetterPage)
async def dead_letters(user: Admin, services: AllServices, page: Page,
                       service: ServiceFilter = "") -> views.DeadLetterPage:
    """Dead letters, oldest first: campaigns' then moderation's (or one service's)."""
    wanted = [service] if service else list(OUTBOX_SERVICES)
    start, after_id = _after(page.cursor, wanted)
    items: list[views.DeadLetter] = []
    for name in wanted[start:]:
        need = page.limit - len(items)
        if need == 0:
            break
        reply = await services.outboxes[name].ListOutboxMessages(
            ops_pb2.ListOutboxMessagesRequest(status="dead", limit=need, after_id=after_id))
        items += [views.dead_letter(name, m) for m in reply.messages]
        after_id = 0
    more = len(items) == page.limit and await _any_after(services, wanted, items[-1])
    cursor = encode_cursor(items[-1].service, items[-1].id) if more else None
    return views.DeadLetterPage(items=items, next_cursor=cursor)


def _after(cursor: str, wanted: list[str]) -> tuple[int, int]:
    """(index in `wanted` of the service to start with, id to start after)."""
    try:
        key = decode_cursor(cursor, str, int)
    except InvalidInput as error:
        raise ApiError(400, Reason.INVALID_INPUT, str(error)) from None
    if key is None:
        return 0, 0
    name, after_id = key
    if name not in wanted or after_id < 0:
        raise ApiError(400, Reason.INVALID_INPUT, "cursor is not valid")
    return wanted.index(name), after_id


async def _any_after(services, wanted: list[str], last: views.DeadLetter) -> bool:
    """Whether a dead letter follows `last`: a full page says nothing."""
    for name in wanted[wanted.index(last.service):]:
        after_id = last.id if name == last.service else 0
        reply = await services.outboxes[name].ListOutboxMessages(
            ops_pb2.ListOutboxMessagesRequest(status="dead", limit=1, after_id=after_id))
        if reply.messages:
            return True
    return False


@router.post("/{service}/dead-letters/{messageId}/retry", response_model=views.Requeued)
async def retry_dead_letter(service: ServicePath, message_id: MessageId, user: Admin,
                            services: AllServices) -> views.Requeued:
    """Puts a dead letter back in its outbox (attempts from zero, due now);
    404 when that outbox has no dead letter with this id (delivered, pending,
    or retried already)."""
    reply = await services.outboxes[service].RetryOutboxMessages(ops_pb2.RetryOutboxMessagesRequest(id=message_id))
    if not reply.requeued:
        raise ApiError(404, Reason.NOT_FOUND, f"{service}'s outbox has no dead letter {message_id}")
    return views.Requeued(service=service, id=message_id)
