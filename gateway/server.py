"""How uvicorn serves the gateway: its HTTP/1.1 protocol (httptools) with
two limits the protocol must hold because the app never sees them
(API.md "Gateway limits"): request headers over MAX_HEADER_BYTES answer 431
as they arrive, and a client that sends nothing for the read timeout while
its request is still arriving (headers or body) is dropped. An idle
keep-alive connection is uvicorn's own timeout_keep_alive."""
import asyncio
import json

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.errors import error_body

# Request line and headers together; each header counts its ": " and CRLF.
MAX_HEADER_BYTES = 16 * 1024
HEADERS_TOO_LARGE = "headers_too_large"
_431 = json.dumps(error_body(HEADERS_TOO_LARGE, f"request headers exceed {MAX_HEADER_BYTES // 1024} KiB")).encode()


class _HeadersTooLarge(Exception):
    """Raised inside a parser callback: httptools stops parsing at once."""


class GatewayHttp(HttpToolsProtocol):
    """HttpToolsProtocol with a header budget and a read timeout; a subclass
    per app carries its settings (uvicorn builds one protocol per connection)."""
    read_timeout_s: float = 15.0

    def connection_made(self, transport: asyncio.Transport) -> None:
        super().connection_made(transport)
        self._header_bytes = 0  # of the request line and headers parsed so far
        self._head_bytes = 0  # received since this request began, while its headers are not whole
        self._awaiting_head = True
        self._headers_too_large = False
        self._read_timer: asyncio.TimerHandle | None = None
        self._reading = True  # a new connection owes us a request
        self._arm_read_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_read_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._awaiting_head:
            self._head_bytes += len(data)
        super().data_received(data)
        if self.transport.is_closing():
            return
        if self._awaiting_head and self._head_bytes > MAX_HEADER_BYTES:
            # httptools hands a header over only once it is whole: a 64 MB
            # one would be buffered in full before on_header saw it.
            self._headers_too_large = True
            self.send_400_response("")
            return
        if self._reading:
            self._arm_read_timer()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes, self._reading = 0, True

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._awaiting_head, self._head_bytes = False, 0
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._awaiting_head = True
        # The request is all here: from now on the app owes the answer.
        self._reading = False
        self._cancel_read_timer()

    def send_400_response(self, msg: str) -> None:
        if not self._headers_too_large:
            return super().send_400_response(msg)
        self.transport.write(b"".join([
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n",
            *(name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers),
            b"content-type: application/json\r\nx-content-type-options: nosniff\r\n",
            b"content-length: %d\r\nconnection: close\r\n\r\n" % len(_431), _431]))
        self.transport.close()

    def _count(self, size: int) -> None:
        self._header_bytes += size
        if self._header_bytes > MAX_HEADER_BYTES:
            self._headers_too_large = True
            raise _HeadersTooLarge()

    def _arm_read_timer(self) -> None:
        self._cancel_read_timer()
        self._read_timer = self.loop.call_later(self.read_timeout_s, self._read_timed_out)

    def _cancel_read_timer(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _read_timed_out(self) -> None:
        self._read_timer = None
        if not self._reading or self.transport.is_closing():
            return
        if self.flow.read_paused:
            # We stopped reading (the app has not taken the body yet): the
            # silence is ours, not the client's.
            self._arm_read_timer()
            return
        self.transport.close()


def uvicorn_config(app, read_timeout_s: float, **options) -> uvicorn.Config:
    """The gateway's uvicorn configuration (gateway.main, and the tests that
    serve the real gateway)."""
    protocol = type("GatewayHttp", (GatewayHttp,), {"read_timeout_s": float(read_timeout_s)})
    return uvicorn.Config(app, http=protocol, log_config=None, access_log=False, lifespan="on", **options)
