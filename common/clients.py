"""Calling a peer service: one long-lived channel per peer, a deadline on
every call, and the internal credential, acting user and request id added
to the metadata of every call in one place (`CallerChannel`)."""
import ipaddress
import socket

import grpc

from common.auth import ACTOR_ID_KEY, ACTOR_ROLE_KEY, OPEN_METHOD_PREFIXES, REQUEST_ID_KEY, TOKEN_KEY, current_actor
from common.logs import request_id_var


class NoActingUser(RuntimeError):
    """A business call without an acting user: a bug, refused here so that
    it can never go out with somebody else's (or the system's) authority."""


class _CallerCall:
    """One RPC method of a peer, adding the caller's metadata and the
    deadline to every call. (A grpc.aio client interceptor would do the same
    at the cost of an extra task and call object per call.)"""

    def __init__(self, inner, method: str, token: str, deadline_s: float):
        self._inner = inner
        self._method = method
        self._token = token
        self._deadline = deadline_s
        self._open = method.startswith(OPEN_METHOD_PREFIXES)

    def __call__(self, request, *, timeout=None, metadata=None, **options):
        actor = current_actor.get()
        caller = [(TOKEN_KEY, self._token), (REQUEST_ID_KEY, request_id_var.get())]
        if actor is not None:
            caller += [(ACTOR_ID_KEY, actor.id), (ACTOR_ROLE_KEY, actor.role)]
        elif not self._open:
            raise NoActingUser(f"{self._method} called without an acting user; wrap the call in acting_as(...)")
        return self._inner(request, timeout=self._deadline if timeout is None else timeout,
                           metadata=[*metadata, *caller] if metadata else caller, **options)


class CallerChannel:
    """A channel to one peer whose unary calls carry the internal
    credential, the request id and the acting user; everything else is the
    wrapped grpc.aio channel's."""

    def __init__(self, channel: grpc.aio.Channel, internal_token: str, deadline_s: float):
        self._channel = channel
        self._token = internal_token
        self._deadline = deadline_s

    def unary_unary(self, method, request_serializer=None, response_deserializer=None, *args, **kwargs):
        inner = self._channel.unary_unary(method, request_serializer, response_deserializer, *args, **kwargs)
        name = method.decode() if isinstance(method, bytes) else method
        return _CallerCall(inner, name, self._token, self._deadline)

    def __getattr__(self, name):
        return getattr(self._channel, name)

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self._channel.close()


def grpc_target(address: str) -> str:
    """The gRPC target of a peer's address: `host:port`, or the replicas of
    a peer as `host:port,host:port,...` (gRPC's ipv4/ipv6 list target), or
    any gRPC target (`dns:///name:port`, whose A records are the replicas)."""
    if "," not in address:
        return address
    endpoints = [_ip_endpoint(part.strip()) for part in address.split(",") if part.strip()]
    if len({ip.version for ip, _ in endpoints}) > 1:
        raise ValueError(f"{address}: the replicas of one peer must all be IPv4 or all IPv6")
    if endpoints[0][0].version == 6:
        return "ipv6:" + ",".join(f"[{ip}]:{port}" for ip, port in endpoints)
    return "ipv4:" + ",".join(f"{ip}:{port}" for ip, port in endpoints)


def _ip_endpoint(endpoint: str) -> tuple:
    """(IP address, port) of `host:port` or `[v6]:port`; a host name is
    resolved once, here (gRPC's list targets take IP addresses only)."""
    host, _, port = endpoint.rpartition(":")
    host = host.strip("[]")
    try:
        return ipaddress.ip_address(host), int(port)
    except ValueError:
        resolved = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)[0][4][0]
        return ipaddress.ip_address(resolved), int(port)


def open_channel(target: str, internal_token: str, deadline_ms: int) -> CallerChannel:
    """A channel to one peer, to keep for the life of the process. When the
    target names several replicas (a list, or a DNS name) its calls are
    spread round-robin over them, skipping one that is down."""
    options = [("grpc.keepalive_time_ms", 30_000), ("grpc.enable_retries", 0),
               # Short reconnect backoff: with gRPC's default (growing to 120 s)
               # a channel keeps failing fast for seconds after its peer is back.
               ("grpc.initial_reconnect_backoff_ms", 100), ("grpc.min_reconnect_backoff_ms", 100),
               ("grpc.max_reconnect_backoff_ms", 2000)]
    resolved = grpc_target(target)
    if resolved != target or target.startswith("dns:"):
        options.append(("grpc.lb_policy_name", "round_robin"))
    return CallerChannel(grpc.aio.insecure_channel(resolved, options=options), internal_token, deadline_ms / 1000)
