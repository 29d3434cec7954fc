"""Calling a peer service: one long-lived channel per peer, a deadline on
every call, and the internal credential, acting user and request id added
to the metadata of every call by one interceptor."""
import grpc

from common.auth import ACTOR_ID_KEY, ACTOR_ROLE_KEY, REQUEST_ID_KEY, TOKEN_KEY, current_actor
from common.logs import request_id_var

# Health and reflection need no acting user (load balancers, readiness).
OPEN_METHOD_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")


class NoActingUser(RuntimeError):
    """A business call without an acting user: a bug, refused here so that
    it can never go out with somebody else's (or the system's) authority."""


class _CallerMetadata(grpc.aio.UnaryUnaryClientInterceptor):
    def __init__(self, internal_token: str, deadline_s: float):
        self._token = internal_token
        self._deadline = deadline_s

    async def intercept_unary_unary(self, continuation, client_call_details, request):
        method = client_call_details.method
        method = method.decode() if isinstance(method, bytes) else method
        metadata = list(client_call_details.metadata or ())
        metadata += [(TOKEN_KEY, self._token), (REQUEST_ID_KEY, request_id_var.get())]
        actor = current_actor.get()
        if actor is not None:
            metadata += [(ACTOR_ID_KEY, actor.id), (ACTOR_ROLE_KEY, actor.role)]
        elif not method.startswith(OPEN_METHOD_PREFIXES):
            raise NoActingUser(f"{method} called without an acting user; wrap the call in acting_as(...)")
        details = grpc.aio.ClientCallDetails(
            client_call_details.method,
            client_call_details.timeout if client_call_details.timeout is not None else self._deadline,
            metadata, client_call_details.credentials, client_call_details.wait_for_ready)
        return await continuation(details, request)


def open_channel(target: str, internal_token: str, deadline_ms: int) -> grpc.aio.Channel:
    """A channel to one peer, to keep for the life of the process."""
    return grpc.aio.insecure_channel(
        target,
        interceptors=[_CallerMetadata(internal_token, deadline_ms / 1000)],
        # Short reconnect backoff: with gRPC's default (growing to 120 s) a
        # channel keeps failing fast for seconds after its peer is back.
        options=[("grpc.keepalive_time_ms", 30_000), ("grpc.enable_retries", 0),
                 ("grpc.initial_reconnect_backoff_ms", 100), ("grpc.min_reconnect_backoff_ms", 100),
                 ("grpc.max_reconnect_backoff_ms", 2000)],
    )
