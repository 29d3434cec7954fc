"""The listening socket of an HTTP process (the gateway, the Bot API
sandbox), bound before uvicorn starts so that a busy port ends the process
with one line naming the setting that moves it."""
import socket

from common.settings import fail_fast


def listening_socket(host: str, port: int, setting: str) -> socket.socket:
    """Bound and listening (connections queue from here on, before the
    server accepts); a busy port exits with one line naming `setting`."""
    try:
        # proto=IPPROTO_TCP: asyncio sets TCP_NODELAY only on sockets that say
        # so; without it Nagle and delayed ACKs add 40 ms to keep-alive requests.
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError as error:
        fail_fast(f"{setting}: cannot listen on {host}:{port}: {error.strerror or error}")
    sock.set_inheritable(True)
    return sock
