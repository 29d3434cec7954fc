"""The refunds campaigns owes: a cascade cancellation of a target with
money in escrow sends `escrow.refund` through the outbox (usecases), and
this delivers it to payments."""
import logging

import grpc

from adtech.payments.v1 import payments_pb2, payments_pb2_grpc
from common.auth import SYSTEM, acting_as
from common.grpc_errors import is_definite_refusal, reason_of
from common.outbox import Message

log = logging.getLogger(__name__)


def refund_handler(payments: payments_pb2_grpc.PaymentsServiceStub):
    """Delivers `escrow.refund`: payments refunds idempotently (a target
    without an escrow, or one refunded already, is success). Anything but a
    business refusal is raised for the relay to repeat; a business refusal
    (an escrow already released to the publisher) can never succeed, so it
    is logged and the message ends instead of being retried into the dead
    letters."""
    async def handle(message: Message) -> bool:
        target_id = message.payload["target_id"]
        try:
            with acting_as(SYSTEM):
                await payments.RefundEscrow(payments_pb2.RefundEscrowRequest(target_id=target_id))
        except grpc.aio.AioRpcError as error:
            if not is_definite_refusal(error.code()):
                raise
            log.error("refund refused for good", extra={"fields": {
                "target_id": target_id, "status": error.code().name, "reason": reason_of(error)}})
        return False
    return handle
