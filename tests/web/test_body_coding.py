"""Coded request bodies (``Content-Encoding``): decoded only when read, never past the
body limit, and a body that does not decode is a 400 that leaves the connection usable.

aiohttp decoded every coded body as it arrived, read or not, with no bound: 20 MB of
gzip (20 GB of zeros) held the instance's event loop for 10 s of CPU, though its request
was answered 413 at once, and the connection was reset under the answer.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import time
import zlib
from typing import Any

import orjson
import pytest

from swimstream.metrics import MetricsRegistry
from swimstream.web.startup import StartingServer
from tests.web.harness import Served, ServeFactory, answer_of, request_head

READING = b'{"temp": 71.5, "tower": "t1", "ts": 1}'


def gzip_bomb(megabytes: int) -> bytes:
    """A gzip stream of ``megabytes`` MiB of zeros (without its trailer), made in no
    time: after a full flush, each further MiB compresses to the same block."""
    coder = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(1 << 20)
    first = coder.compress(zeros) + coder.flush(zlib.Z_FULL_FLUSH)
    block = coder.compress(zeros) + coder.flush(zlib.Z_FULL_FLUSH)
    return first + block * (megabytes - 1)


async def test_gzip_and_deflate_bodies_are_commands_as_plain_ones_are(served: Served) -> None:
    url = served.url("/device/1?lane=reading")
    raw_deflate = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    bodies = {
        "gzip": gzip.compress(READING),
        "x-gzip": gzip.compress(READING),
        " GZIP ": gzip.compress(READING[:20]) + gzip.compress(READING[20:]),  # two members
        "deflate": zlib.compress(READING),
        "Deflate": raw_deflate.compress(READING) + raw_deflate.flush(),  # as some send it
        "identity": READING,
    }
    for coding, body in bodies.items():
        headers = {"Content-Encoding": coding, "Content-Type": "application/json"}
        async with served.client.post(url, data=body, headers=headers) as response:
            assert response.status == 200, (coding, await response.text())
    assert served.plane.get("/device/1", "readings") == len(bodies)


async def test_a_coding_not_taken_is_415_naming_it(served: Served) -> None:
    """(An unknown coding was read as plain bytes: a JSON error, or a command made of
    bytes the client had coded.)"""
    url = served.url("/device/1?lane=status")
    for coding in ("br", "zstd", "compress", "gzip, gzip", "rot13"):
        async with served.client.post(
            url, data=b"{}", headers={"Content-Encoding": coding}
        ) as response:
            assert response.status == 415, coding
            error = (await response.json())["error"]
            assert error.startswith(f"Content-Encoding {coding!r} is not taken"), error
    assert not served.plane.is_active("/device/1")  # untouched: not even made


@pytest.mark.parametrize(
    ("coding", "body", "error"),
    [
        ("gzip", gzip.compress(READING)[:-12], "its gzip stream stops before its end"),
        ("gzip", b"not gzip at all", "it does not decode as gzip: Error -3"),
        ("deflate", b"xx", "it does not decode as deflate: Error -3"),
        ("deflate", zlib.compress(READING) + b"more", "it has bytes after the end of its deflate"),
    ],
)
async def test_a_body_that_does_not_decode_is_400_saying_why_and_keeps_the_connection(
    served: Served, caplog: pytest.LogCaptureFixture, coding: str, body: bytes, error: str
) -> None:
    """(It was a 400 with ``Connection: close`` and a warning line, as aiohttp, decoding
    what the handler left, failed on it again; a gzip stream cut short was taken as
    whole, and its 400 said the JSON was bad.)"""
    caplog.set_level(logging.DEBUG, logger="aiohttp")
    reader, writer = await asyncio.open_connection("127.0.0.1", served.server.port)
    try:
        writer.write(request_head("POST", "/device/1?lane=reading", body, coding) + body)
        status, headers = await answer_of(reader)
        assert (status, headers.get("connection")) == (400, None)
        writer.write(request_head("POST", "/device/1?lane=reading", READING, None) + READING)
        assert (await answer_of(reader))[0] == 200  # the same connection
    finally:
        writer.close()
    async with served.client.post(
        served.url("/device/1?lane=reading"), data=body, headers={"Content-Encoding": coding}
    ) as response:
        assert response.status == 400
        assert (await response.json())["error"].startswith(f"the body cannot be read: {error}")
    assert not [r for r in caplog.records if r.name == "aiohttp.server"]
    assert served.plane.get("/device/1", "readings") == 1


@pytest.mark.parametrize(
    ("method", "path", "status", "body_arrives"),
    [
        ("GET", "/device/1?lane=status", 200, "with the headers"),  # never read
        ("GET", "/device/1?lane=status", 200, "after the answer"),  # not even received
        ("POST", "/nowhere/1?lane=status", 404, "with the headers"),  # refused unread
        ("POST", "/nowhere/1?lane=status", 404, "after the answer"),
    ],
)
async def test_a_coded_body_left_unread_is_skipped_whatever_it_holds(
    served: Served, method: str, path: str, status: int, body_arrives: str
) -> None:
    """(aiohttp decoded a body left unread to skip it, so corrupt gzip ended the
    connection, and the answer had to say ``Connection: close``.)"""
    served.plane.agent("/device/1")  # (a GET reads an agent something made)
    body = b"not gzip at all"
    head = request_head(method, path, body)
    reader, writer = await asyncio.open_connection("127.0.0.1", served.server.port)
    try:
        if body_arrives == "with the headers":
            writer.write(head + body)
            answer = await answer_of(reader)
        else:
            writer.write(head)
            answer = await answer_of(reader)
            writer.write(body)
        assert answer[0] == status and answer[1].get("connection") is None, answer
        writer.write(request_head("GET", "/device/1?lane=status", b"", None))
        assert (await answer_of(reader))[0] == 200  # the same connection
    finally:
        writer.close()


async def test_a_body_decoding_past_the_limit_is_413_and_decodes_no_further(
    serve: ServeFactory,
) -> None:
    async with serve(max_body_size=1024) as served:
        url = served.url("/device/1?lane=status")
        headers = {"Content-Encoding": "gzip"}
        fits = orjson.dumps({"pad": "x" * 1000})
        async with served.client.post(url, data=gzip.compress(fits), headers=headers) as resp:
            assert resp.status == 200, await resp.text()
        big = orjson.dumps({"pad": "x" * 2000})
        async with served.client.post(url, data=gzip.compress(big), headers=headers) as resp:
            assert resp.status == 413 and "1024" in (await resp.json())["error"]

        async def chunks() -> Any:  # no Content-Length: read as it arrives
            yield gzip_bomb(50)[:900]

        async with served.client.post(url, data=chunks(), headers=headers) as resp:
            assert resp.status == 413
        assert served.plane.get("/device/1", "status") == {"pad": "x" * 1000}


async def test_a_gzip_bomb_costs_the_instance_no_time(served: Served) -> None:
    """20 MB of gzip that decode to 20 GB. The instance's CPU time is compared with the
    10 s it spent before, not with a wall clock: 3 s leaves a wide margin on any
    machine, where decoding costs about 0.5 s a GB."""
    bomb = gzip_bomb(20_000)
    used = time.process_time()  # (the server runs in this process, with the test)
    for method, path in (("POST", "/device/1?lane=status"), ("PUT", "/device/1?lane=status")):
        reader, writer = await asyncio.open_connection("127.0.0.1", served.server.port)
        try:
            writer.write(request_head(method, path, bomb))
            answer = asyncio.ensure_future(answer_of(reader))
            writer.write(bomb)
            await writer.drain()
            assert (await answer)[0] == (413 if method == "POST" else 405)
        finally:
            writer.close()
    assert time.process_time() - used < 3.0
    assert not served.plane.is_active("/device/1")  # untouched: not even made


async def test_a_gzip_bomb_costs_a_starting_instance_no_time() -> None:
    """The start-up server answers every request 503 unread: aiohttp decoded the bomb
    all the same, while the instance restored its state."""
    starting = StartingServer(("127.0.0.1", 0), MetricsRegistry())
    await starting.start()
    bomb = gzip_bomb(20_000)
    used = time.process_time()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", starting.port)
        try:
            writer.write(request_head("POST", "/device/1?lane=status", bomb))
            answer = asyncio.ensure_future(answer_of(reader))
            writer.write(bomb)
            await writer.drain()
            assert (await answer)[0] == 503
        finally:
            writer.close()
    finally:
        await starting.stop()
    assert time.process_time() - used < 3.0
