"""gRPC server bootstrap shared by every service: the call interceptor
(internal credential, acting user, request id, one log line, error mapping),
health, reflection and a graceful stop."""
import asyncio
import logging
import signal
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from common.auth import (OPEN_METHOD_PREFIXES, REQUEST_ID_KEY, TOKEN_KEY, actor_from_metadata, current_actor,
                         tokens_match)
from common.db import is_transient
from common.errors import DomainError
from common.grpc_errors import rich_status_trailer, status_code_for
from common.logs import request_id_var

log = logging.getLogger(__name__)

Registration = tuple[Callable[[Any, grpc.aio.Server], None], Any, str]


class CallInterceptor(grpc.aio.ServerInterceptor):
    """Refuses a call without the internal credential or an acting user, and
    maps domain errors to status codes in one place."""

    def __init__(self, internal_token: str):
        self._token = internal_token
        self._guarded: dict[str, grpc.RpcMethodHandler] = {}  # built once per method

    async def intercept_service(self, continuation, handler_call_details):
        method = handler_call_details.method
        guarded = self._guarded.get(method)
        if guarded is not None:
            return guarded
        handler = await continuation(handler_call_details)
        if handler is None or method.startswith(OPEN_METHOD_PREFIXES) or handler.unary_unary is None:
            return handler
        guarded = self._guarded[method] = grpc.unary_unary_rpc_method_handler(
            self._guard(method, handler.unary_unary), request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer)
        return guarded

    def _guard(self, method: str, inner):
        token = self._token

        async def guarded(request, context: grpc.aio.ServicerContext):
            metadata = dict(context.invocation_metadata() or ())
            request_id_var.set(metadata.get(REQUEST_ID_KEY) or uuid.uuid4().hex)
            if not tokens_match(metadata.get(TOKEN_KEY), token):
                log.warning("refused", extra={"fields": {"method": method, "status": "UNAUTHENTICATED"}})
                await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or bad internal credential")
            actor = actor_from_metadata(metadata)
            if actor is None:
                await context.abort(grpc.StatusCode.UNAUTHENTICATED, "no acting user in metadata")
            current_actor.set(actor)
            started, status = time.perf_counter(), "OK"
            try:
                return await inner(request, context)
            except DomainError as error:
                code = status_code_for(error)
                status = code.name
                await context.abort(code, error.message, trailing_metadata=rich_status_trailer(error, code))
            except (grpc.aio.AbortError, asyncio.CancelledError):
                status = "ABORTED_BY_HANDLER"
                raise
            except Exception as error:
                if is_transient(error):
                    # The caller may repeat: its steps are idempotent, and
                    # UNAVAILABLE (unlike INTERNAL) says so.
                    status = "UNAVAILABLE"
                    log.warning("database unavailable", exc_info=True, extra={"fields": {"method": method}})
                    await context.abort(grpc.StatusCode.UNAVAILABLE, "a dependency is unavailable; retry")
                status = "INTERNAL"
                log.exception("unexpected error", extra={"fields": {"method": method}})
                await context.abort(grpc.StatusCode.INTERNAL, "internal error")
            finally:
                # The gateway logs each request at INFO; the internal calls it
                # fans out to are DEBUG (the request id joins them up), unless
                # refused or failed. Nothing is built when the level is off.
                level = logging.DEBUG if status == "OK" else logging.INFO
                if log.isEnabledFor(level):
                    log.log(level, "call", extra={"fields": {
                        "method": method, "status": status, "actor_role": actor.role,
                        "duration_ms": round((time.perf_counter() - started) * 1000, 2)}})

        return guarded


class ServiceServer:
    """One grpc.aio server: our servicers plus health and reflection."""

    def __init__(self, internal_token: str, registrations: Iterable[Registration]):
        self.registrations = list(registrations)
        self.server = grpc.aio.server(interceptors=[CallInterceptor(internal_token)], options=[
            ("grpc.so_reuseport", 0), ("grpc.max_receive_message_length", 8 * 1024 * 1024)])
        self.health = health.aio.HealthServicer()
        self.port: int | None = None

    async def start(self, address: str) -> int:
        for add, servicer, _ in self.registrations:
            add(servicer, self.server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        names = [full_name for _, _, full_name in self.registrations]
        reflection.enable_server_reflection([*names, health.SERVICE_NAME, reflection.SERVICE_NAME], self.server)
        try:
            self.port = self.server.add_insecure_port(address)
        except RuntimeError as error:
            raise PortInUse(f"cannot listen on {address}: port in use or not allowed") from error
        if not self.port:
            raise PortInUse(f"cannot listen on {address}: port in use or not allowed")
        await self.server.start()
        for full_name in [*names, ""]:
            await self.health.set(full_name, health_pb2.HealthCheckResponse.SERVING)
        return self.port

    async def stop(self, grace: float = 5.0) -> None:
        """Stops answering health first, so balancers drain us, then lets
        in-flight calls finish within `grace`."""
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)


class PortInUse(Exception):
    pass


async def run_until_signalled(start: Callable[[], Awaitable[None]], stop: Callable[[], Awaitable[None]]) -> None:
    """Runs a process until SIGTERM or SIGINT, then stops it gracefully."""
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await start()
    await stopping.wait()
    await stop()


def install_uvloop() -> None:
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
