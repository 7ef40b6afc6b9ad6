"""Connections of the web port: what a client that sends (almost) nothing may hold.

Real sockets against a real server: a request head trickled one byte at a time, a
connection that sends nothing, a keep-alive connection left idle. Each must be closed
by the server once the head's deadline passed, while an SSE stream, which sends and
receives nothing for long stretches by design, stays open.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

from swimstream.metrics import MetricsRegistry
from swimstream.web.startup import StartingServer
from tests.web.harness import EventReader, ServeFactory

DEADLINE = 10.0
"""How long the tests wait for the server to act (the server's own deadline is 0.2 s)."""


async def closed_by_server(client: socket.socket, trickle: bytes = b"") -> bytes:
    """Send ``trickle`` one byte at a time (then nothing) until the server closes the
    connection; what it answered before closing. AssertionError after :data:`DEADLINE`."""
    loop = asyncio.get_running_loop()
    answer = b""

    async def read_until_closed() -> None:
        nonlocal answer
        with contextlib.suppress(ConnectionError):
            while chunk := await loop.sock_recv(client, 65536):
                answer += chunk

    reading = asyncio.ensure_future(read_until_closed())
    try:
        async with asyncio.timeout(DEADLINE):
            for byte in trickle:
                if reading.done():
                    break
                with contextlib.suppress(ConnectionError):
                    await loop.sock_sendall(client, bytes([byte]))
                await asyncio.sleep(0.05)
            await reading
    except TimeoutError:
        raise AssertionError(f"the server kept the connection open for {DEADLINE:g} s") from None
    finally:
        reading.cancel()
    return answer


@contextlib.asynccontextmanager
async def connected(port: int) -> AsyncIterator[socket.socket]:
    """A real TCP connection to the server on loopback ``port``."""
    loop = asyncio.get_running_loop()
    client = socket.socket()
    client.setblocking(False)
    try:
        await loop.sock_connect(client, ("127.0.0.1", port))
        yield client
    finally:
        client.close()


async def test_a_request_head_sent_one_byte_at_a_time_is_cut_off(serve: ServeFactory) -> None:
    """Slowloris: aiohttp sets no deadline on a request's head, so a client sending its
    headers a byte at a time held the connection (and the head read so far) for good;
    a few thousand such clients held every socket the process may open."""
    async with serve(heartbeat_interval=0.1) as served:
        async with connected(served.server.port) as client:
            head = b"GET /_stats HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 4000
            assert await closed_by_server(client, head) == b""  # no request was served
        assert (await served.get_json("/_stats"))[0] == 200  # it serves on


async def test_a_connection_that_sends_nothing_is_closed(serve: ServeFactory) -> None:
    async with serve(heartbeat_interval=0.1) as served, connected(served.server.port) as client:
        assert await closed_by_server(client) == b""


async def test_an_idle_keep_alive_connection_is_closed(serve: ServeFactory) -> None:
    """After its answer, a keep-alive connection waits for the next request's head under
    the same deadline (aiohttp's default kept it an hour)."""
    async with serve(heartbeat_interval=0.1) as served, connected(served.server.port) as client:
        request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
        await asyncio.get_running_loop().sock_sendall(client, request)
        answer = await closed_by_server(client)
        assert answer.startswith(b"HTTP/1.1 200 "), answer
        assert b"Connection: close" not in answer  # it was kept alive, then closed idle


async def test_a_stream_lasts_beyond_the_head_deadline(serve: ServeFactory) -> None:
    """The deadline is for the head only: a stream's connection is quiet for long
    stretches (a heartbeat now and then) and must stay open."""
    async with (
        serve(heartbeat_interval=0.1) as served,
        served.client.get(served.url("/device/1?lane=status&stream=1")) as response,
    ):
        events = EventReader(response)
        assert (await events.next())[0] == "state"
        assert (await events.next())[0] == "synced"
        await asyncio.sleep(0.6)  # three times the head's deadline, heartbeats only
        assert (await served.post_json("/device/1?lane=status", 7))[0] == 200
        assert await events.next() == ("set", 7)
        assert events.comments


async def test_the_start_up_probes_close_a_connection_whose_head_does_not_come() -> None:
    """The port answers probes while the instance starts, for minutes when it restores
    a store: its connections had aiohttp's hour to send a head, so a client opening
    connections and sending nothing held sockets the broker clients need meanwhile."""
    starting = StartingServer(("127.0.0.1", 0), MetricsRegistry(), heartbeat_interval=0.1)
    await starting.start()
    try:
        async with connected(starting.port) as client:
            assert await closed_by_server(client) == b""
        async with connected(starting.port) as client:
            assert (
                await closed_by_server(client, b"GET /healthz HTTP/1.1\r\nX: " + 400 * b"a") == b""
            )
    finally:
        await starting.stop()
