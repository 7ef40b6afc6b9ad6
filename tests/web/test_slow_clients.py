"""A client that reads all along, but slowly, gets all of a big lane: it is not dropped.

A write its client has not taken within twice ``heartbeat_interval`` drops the
connection (the client stopped reading). The time ran over the whole write, so a client
that read all along over a slow link was dropped from a big lane, logged as having
"taken nothing", and its reconnect met the same sync and the same end.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import orjson

from tests.web.harness import ServeFactory

PAD = 8_000_000
"""A lane's state bigger than what loopback's buffers take (about 4 MB)."""
READ = 16_384
PAUSE = 0.01
"""The client reads at most ``READ`` bytes every ``PAUSE``: 1.6 MB/s at most, so the
state takes it seconds, where twice the heartbeat interval is 1.5 s."""


@asynccontextmanager
async def slow_client(port: int, request: bytes) -> AsyncIterator[socket.socket]:
    """A raw connection with a small receive buffer that sent ``request``."""
    loop = asyncio.get_running_loop()
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65_536)  # before connecting
    client.setblocking(False)
    try:
        await loop.sock_connect(client, ("127.0.0.1", port))
        await loop.sock_sendall(client, request)
        yield client
    finally:
        client.close()


async def read_slowly(client: socket.socket, until: bytes) -> bytes:
    """What ``client`` receives until ``until`` came or the connection ended."""
    loop = asyncio.get_running_loop()
    received = bytearray()
    while until not in received[-2 * len(until) - READ :]:
        data = await loop.sock_recv(client, READ)
        if not data:
            break
        received += data
        await asyncio.sleep(PAUSE)
    return bytes(received)


async def test_a_stream_client_reading_slowly_gets_a_big_state(serve: ServeFactory) -> None:
    async with serve(heartbeat_interval=0.75) as served:
        await served.plane.command("/device/1", "status", {"pad": "x" * PAD})
        request = (
            b"GET /device/1?lane=status HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n"
        )
        async with slow_client(served.server.port, request) as client:
            received = await read_slowly(client, b"event: synced\n")
        assert b"event: synced\n" in received, "dropped before the state was read"
        state = received.split(b"event: state\ndata: ", 1)[1].split(b"\n", 1)[0]
        assert orjson.loads(state) == {"pad": "x" * PAD}


async def test_a_get_client_reading_slowly_gets_a_big_answer(serve: ServeFactory) -> None:
    async with serve(heartbeat_interval=0.75) as served:
        await served.plane.command("/device/2", "status", {"pad": "y" * PAD})
        request = b"GET /device/2?lane=status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        async with slow_client(served.server.port, request) as client:
            received = await read_slowly(client, b'"}')
        head, _, body = received.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head
        assert orjson.loads(body) == {"pad": "y" * PAD}, "dropped before the answer was read"
