"""How an `adtech` command calls a service: at `CliSettings.service_address`
(where `adtech run` starts it), and a call that fails ends the command with
one line naming the service, its address and what to check, never a
traceback."""
import grpc

from common.clients import open_channel
from operations.settings import CliSettings, CommandFailed


class PeerChannel:
    """A channel to one service, with the internal credential, whose calls
    raise CommandFailed instead of grpc's error (for stubs used by code that
    knows nothing of the command, like services.verify)."""

    def __init__(self, settings: CliSettings, context: str):
        self.context = context
        self.address = settings.service_address(context)
        # What to check when nothing answers there: the setting the address came from.
        self.unanswered_hint = (f"is {context} running at {context.upper()}_ADDR?" if settings.address_given(context)
                                else f"is `make run` running with the same {context.upper()}_PORT?")
        self._channel = open_channel(self.address, settings.internal_token(), settings.grpc_deadline_ms)

    def unary_unary(self, method, *args, **kwargs):
        call = self._channel.unary_unary(method, *args, **kwargs)

        async def answer(request, **options):
            try:
                return await call(request, **options)
            except grpc.aio.AioRpcError as error:
                raise CommandFailed(self.failure(error)) from None
        return answer

    def failure(self, error: grpc.aio.AioRpcError) -> str:
        where = f"{self.context} at {self.address}: {error.code().name}"
        if error.code() == grpc.StatusCode.UNAVAILABLE:
            return f"{where} (not answering): {self.unanswered_hint}"
        if error.code() == grpc.StatusCode.UNAUTHENTICATED:
            # Each installation generates its own internal token: the one
            # that answered here was started from another data directory.
            return (f"{self.context}: a service answered on {self.address} but refused this installation's "
                    "credential: another `make run` on this port?")
        return f"{where}: {error.details()}"

    def __getattr__(self, name):
        # A stub binds every method of its service, streaming ones included:
        # those are the wrapped channel's.
        return getattr(self._channel, name)

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.close()
