"""Outbox statistics and dead-letter handling: the `adtech.ops.v1` service
every outbox-owning service serves, and the queries behind it."""
import sqlalchemy as sa

from adtech.ops.v1 import ops_pb2, ops_pb2_grpc
from common.auth import require_actor
from common.db import Database
from common.outbox import wake_relays
from common.pagination import page_limit
from common.timestamps import to_timestamp

# Each part reads only pending or dead rows through their partial indexes,
# never the delivered history.
_STATS = sa.text("""
    SELECT (SELECT count(*) FROM outbox_messages WHERE status = 'pending') AS pending,
           (SELECT count(*) FROM outbox_messages WHERE status = 'dead') AS dead,
           coalesce(extract(epoch FROM now() - (SELECT min(created_at) FROM outbox_messages
                                                 WHERE status = 'pending')), 0) AS oldest,
           coalesce((SELECT max(attempts) FROM outbox_messages WHERE status = 'pending'), 0) AS max_attempts""")


async def outbox_stats(db: Database) -> dict:
    async with db.single_statement("read_outbox_stats") as uow:
        row = (await uow.execute(_STATS)).one()
    return {"pending": row.pending, "dead": row.dead, "oldest_pending_age_seconds": float(row.oldest),
            "max_attempts": row.max_attempts}


class OpsServicer(ops_pb2_grpc.OpsServiceServicer):
    def __init__(self, db: Database):
        self.db = db

    async def GetOutboxStats(self, request, context):
        require_actor().require("admin", "system")
        return ops_pb2.GetOutboxStatsResponse(**await outbox_stats(self.db))

    async def ListOutboxMessages(self, request, context):
        require_actor().require("admin", "system")
        statuses = [request.status] if request.status else ["pending", "dead"]
        async with self.db.single_statement("list_outbox_messages") as uow:
            rows = (await uow.execute(sa.text("""
                SELECT id, topic, aggregate_id, status, attempts, coalesce(last_error, '') AS last_error,
                       created_at, next_attempt_at
                  FROM outbox_messages WHERE status = ANY(:statuses) AND id > :after_id ORDER BY id LIMIT :limit"""),
                {"statuses": statuses, "after_id": request.after_id, "limit": page_limit(request.limit)})).all()
        return ops_pb2.ListOutboxMessagesResponse(messages=[ops_pb2.OutboxMessage(
            id=r.id, topic=r.topic, aggregate_id=r.aggregate_id, status=r.status, attempts=r.attempts,
            last_error=r.last_error, created_at=to_timestamp(r.created_at),
            next_attempt_at=to_timestamp(r.next_attempt_at)) for r in rows])

    async def RetryOutboxMessages(self, request, context):
        # The casts: `:id = 0` alone would type the parameter int4, and an
        # id past 2^31 would be refused instead of found (or not).
        require_actor().require("admin", "system")
        async with self.db.unit_of_work("requeue_dead_letters") as uow:
            result = await uow.execute(sa.text("""
                UPDATE outbox_messages SET status = 'pending', attempts = 0, next_attempt_at = now(),
                       claimed_until = NULL
                 WHERE status = 'dead' AND (CAST(:id AS bigint) = 0 OR id = CAST(:id AS bigint))"""),
                {"id": request.id})
            await wake_relays(uow)
            await uow.commit()
        return ops_pb2.RetryOutboxMessagesResponse(requeued=result.rowcount)
