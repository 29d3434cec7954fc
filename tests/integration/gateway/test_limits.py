"""The gateway's limits over real HTTP (API.md "Gateway limits"): a body
over the limit is 413 before it is read, parsed or its token checked, a
streamed one too, and memory stays bounded while several are refused;
headers over 16 KiB are 431; a JSON body nested too deep is 400; a client
that sends nothing is dropped; and health answers fast meanwhile."""
import asyncio
import json
import time

import httpx
import pytest

from tests.integration.gateway.running import bearer, closed_address, gateway_settings, serving

MIB = 1024 * 1024
KIB_64 = 64 * 1024


def chunked(total: int):
    """A chunked body of `total` bytes, in frames of 64 KiB, made as sent."""
    frame = b"%x\r\n%s\r\n" % (KIB_64, b"x" * KIB_64)
    return (frame for _ in range(total // KIB_64))


@pytest.fixture(scope="module")
async def gateway(data_dir):
    """The gateway with services down and a short read timeout."""
    settings = gateway_settings(data_dir, campaigns_addr=closed_address(), moderation_addr=closed_address(),
                                payments_addr=closed_address(), grpc_deadline_ms=1000, gateway_read_timeout_s=0.5)
    async with serving(settings) as url:
        yield url


async def raw_exchange(url: str, head: bytes, body_chunks=(), timeout: float = 5) -> tuple[int | None, bytes]:
    """Sends `head` and then the chunks (stopping when the gateway closes),
    and reads what comes back: (status, body) or (None, b"")."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    answering = asyncio.create_task(reader.read())  # until the gateway closes
    try:
        try:
            writer.write(head)
            for chunk in body_chunks:
                if answering.done():
                    break
                writer.write(chunk)
                await writer.drain()
                # A moment to hear a refusal before writing on: a write after
                # the gateway closed makes its kernel reset the connection,
                # and a reset discards the answer on our side.
                await asyncio.sleep(0.002)
        except ConnectionError:
            pass  # the gateway closed while we wrote: read what it said
        answer = await asyncio.wait_for(answering, timeout)
    except ConnectionError:
        return None, b""
    finally:
        answering.cancel()
        writer.close()
    if not answer:
        return None, b""
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


def post_head(path: str, **headers) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: gateway", "Content-Type: application/json",
             *(f"{name.replace('_', '-')}: {value}" for name, value in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def peak_rss_reset() -> None:
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")


def rss_mib(field: str) -> float:
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith(field + ":"))
    return int(line.split()[1]) / 1024


async def test_a_5_mb_body_without_a_token_is_413_before_a_byte_of_it_is_sent(gateway):
    status, body = await raw_exchange(gateway, post_head("/api/campaigns", Content_Length=5 * 1000 * 1000))
    assert status == 413
    assert json.loads(body)["error"]["code"] == "payload_too_large"


async def test_a_streamed_body_over_the_limit_is_413_too(gateway):
    status, body = await raw_exchange(gateway, post_head("/api/campaigns", Transfer_Encoding="chunked"),
                                      chunked(5 * MIB))
    assert status == 413
    assert json.loads(body)["error"]["code"] == "payload_too_large"


async def test_a_body_within_the_limit_reaches_the_route(gateway):
    async with httpx.AsyncClient(base_url=gateway, timeout=10) as client:
        response = await client.post("/api/campaigns", json={"name": "x" * 200, "pad": "y" * (MIB // 2)})
    assert response.status_code == 401


async def test_memory_stays_bounded_while_four_100_mb_bodies_are_refused(gateway):
    peak_rss_reset()
    before = rss_mib("VmRSS")

    async def upload():
        return await raw_exchange(gateway, post_head("/api/campaigns", Transfer_Encoding="chunked"),
                                  chunked(100 * MIB))

    answers = await asyncio.gather(*(upload() for _ in range(4)))
    assert [status for status, _ in answers] == [413] * 4
    assert rss_mib("VmHWM") - before < 64


async def test_headers_over_16_kib_are_431(gateway):
    async with httpx.AsyncClient(base_url=gateway, timeout=10) as client:
        response = await client.get("/api/campaigns", headers={"Authorization": "Bearer " + "a" * 20_000})
    assert response.status_code == 431
    assert response.json()["error"]["code"] == "headers_too_large"
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_headers_just_under_16_kib_are_read(gateway):
    async with httpx.AsyncClient(base_url=gateway, timeout=10) as client:
        response = await client.get("/api/health/live", headers={"X-Padding": "a" * 15_000})
    assert response.status_code == 200


async def test_a_64_mb_header_is_431_and_health_answers_fast_meanwhile(gateway):
    head = b"GET /api/campaigns HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer "
    huge = (b"a" * KIB_64 for _ in range(64 * 16))
    attack = asyncio.create_task(raw_exchange(gateway, head, huge))
    bodies = [asyncio.create_task(raw_exchange(gateway, post_head("/api/campaigns", Transfer_Encoding="chunked"),
                                               chunked(100 * MIB)))
              for _ in range(4)]
    slowest = 0.0
    async with httpx.AsyncClient(base_url=gateway, timeout=10) as client:
        for _ in range(10):
            started = time.perf_counter()
            assert (await client.get("/api/health/live")).status_code == 200
            slowest = max(slowest, time.perf_counter() - started)
            await asyncio.sleep(0.02)
    assert (await attack)[0] == 431
    assert [status for status, _ in await asyncio.gather(*bodies)] == [413] * 4
    # The gateway, the attackers and this client share one event loop here.
    assert slowest < 0.2


async def test_json_nested_100k_deep_without_a_token_is_400_unparsed(gateway):
    body = b"[" * 100_000 + b"]" * 100_000
    async with httpx.AsyncClient(base_url=gateway, timeout=10) as client:
        response = await client.post("/api/campaigns", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_input"
    assert "deeper" in response.json()["error"]["message"]


async def test_brackets_inside_strings_do_not_count_as_nesting(gateway):
    async with httpx.AsyncClient(base_url=gateway, timeout=10) as client:
        response = await client.post("/api/campaigns", json={"name": "[" * 100 + "{" * 50}, headers=bearer("advertiser"))
    assert response.status_code == 503  # past every limit, to the (stopped) service


async def test_a_connection_that_sends_nothing_is_dropped_after_the_read_timeout(gateway):
    host, port = gateway.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    started = time.perf_counter()
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()
    assert 0.4 < time.perf_counter() - started < 3


async def test_a_request_whose_headers_stall_is_dropped(gateway):
    status, _ = await raw_exchange(gateway, b"GET /api/health/live HTTP/1.1\r\nHost: gateway\r\n")
    assert status is None


async def test_a_body_that_stalls_halfway_is_dropped(gateway):
    status, _ = await raw_exchange(gateway, post_head("/api/campaigns", Content_Length=1000) + b'{"name":')
    assert status is None
