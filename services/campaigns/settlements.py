"""The money moves campaigns owes payments, delivered from its outbox: a
refund (`escrow.refund`: a target cancelled with money in escrow, or a post
that failed) and a release (`escrow.release`: a post kept up through its
window). Each message names the target; payments moves the money at most
once per target and answers a repeat with the same result, so a message
delivered twice moves nothing twice, and a release and a refund of one
target can never both happen (the second is refused: escrow_closed)."""
import logging

import grpc

from adtech.payments.v1 import payments_pb2, payments_pb2_grpc
from common.auth import SYSTEM, acting_as
from common.grpc_errors import is_definite_refusal, reason_of
from common.outbox import Message
from services.campaigns.domain import REFUND_TOPIC
from services.campaigns.publication import RELEASE_TOPIC

log = logging.getLogger(__name__)


def settlement_handlers(payments: payments_pb2_grpc.PaymentsServiceStub) -> dict:
    """The outbox handlers of both topics. Anything but a business refusal
    is raised for the relay to repeat; a business refusal (a release of a
    refunded escrow, a refund of a released one) can never succeed, so it
    is logged and the message ends instead of being retried into the dead
    letters."""
    def handler(topic: str, call):
        async def handle(message: Message) -> bool:
            target_id = message.payload["target_id"]
            try:
                with acting_as(SYSTEM):
                    await call(target_id)
            except grpc.aio.AioRpcError as error:
                if not is_definite_refusal(error.code()):
                    raise
                log.error("settlement refused for good", extra={"fields": {
                    "topic": topic, "target_id": target_id, "status": error.code().name,
                    "reason": reason_of(error)}})
            return False
        return handle

    return {
        REFUND_TOPIC: handler(REFUND_TOPIC, lambda target_id: payments.RefundEscrow(
            payments_pb2.RefundEscrowRequest(target_id=target_id))),
        RELEASE_TOPIC: handler(RELEASE_TOPIC, lambda target_id: payments.ReleaseEscrow(
            payments_pb2.ReleaseEscrowRequest(target_id=target_id))),
    }
