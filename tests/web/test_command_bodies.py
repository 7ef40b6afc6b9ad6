"""A command's body over HTTP: what is not JSON, or could not be served back, or does
not decode as its ``Content-Encoding`` says, or is too large, or never comes, is a clear
4xx, one log line at most, and the server stays up (the other lane tests:
tests/web/test_lanes.py)."""

from __future__ import annotations

import asyncio
import gzip
import logging
from typing import Any

import orjson
import pytest

from tests.web.harness import Served, ServeFactory, answer_of, request_head


async def test_bad_json_is_400_and_an_empty_body_is_null(served: Served) -> None:
    assert await served.post_json("/device/1?lane=status", {"temp": 1.0}) == (200, {"ok": True})
    async with served.client.post(served.url("/device/1?lane=status"), data=b"{nope") as response:
        assert response.status == 400
        assert "not valid JSON" in (await response.json())["error"]
    assert await served.get_json("/device/1?lane=status") == (200, {"temp": 1.0})  # untouched
    async with served.client.post(served.url("/device/1?lane=status"), data=b"") as response:
        assert response.status == 200
    assert await served.get_json("/device/1?lane=status") == (200, None)  # set to null


async def test_a_lane_that_takes_no_commands_is_405_before_any_agent_sees_it(
    served: Served,
) -> None:
    """(It used to reach the agent and fail there: 422, an ERROR line with a traceback
    and a callback failure counted, for what is the client's mistake.)"""
    async with served.client.post(served.url("/tower/a?lane=devices"), data=b"{}") as response:
        assert response.status == 405 and response.headers["Allow"] == "GET, HEAD"
        body = await response.json()
    assert "'devices' (join_value) does not take commands" in body["error"]
    assert body["command_lanes"] == ["attach", "summary"]
    assert served.plane.active_agents == 0


async def test_a_body_nested_deeper_than_a_get_could_write_back_is_400(served: Served) -> None:
    deep = b"[" * 300 + b"]" * 300  # orjson reads 1,024 levels and writes 254
    async with served.client.post(served.url("/device/1?lane=status"), data=deep) as response:
        assert response.status == 400
        assert "could not be served back as JSON" in (await response.json())["error"]
    shallow = b"[" * 200 + b"]" * 200
    async with served.client.post(served.url("/device/1?lane=status"), data=shallow) as response:
        assert response.status == 200
    status, body = await served.get_json("/device/1?lane=status")
    assert status == 200 and orjson.dumps(body) == shallow  # and it is served back whole


async def test_an_integer_beyond_64_bits_is_400_rather_than_applied_as_a_float(
    served: Served,
) -> None:
    """(orjson reads such an integer as the nearest float: the lane was set to
    1.2345678901234568e+29, a number the client never sent.)"""
    url = served.url("/device/1?lane=status")
    for body, literal in [
        (b"123456789012345678901234567890", "123456789012345678901234567890"),
        (b'{"id": 18446744073709551617}', "18446744073709551617"),
        (b'[1, {"a": [-9223372036854775809]}]', "-9223372036854775809"),
    ]:
        async with served.client.post(url, data=body) as response:
            assert response.status == 400, body
            error = (await response.json())["error"]
        assert "could not be served back as JSON" in error, error
        assert f"the integer {literal} is beyond 64 bits" in error, error
    assert not served.plane.is_active("/device/1")  # untouched: not even made
    for fits in [
        b'{"id": 9007199254740993}',  # beyond a double's integers, within 64 bits
        b"[18446744073709551615, -9223372036854775808]",
        b'{"id": "123456789012345678901234567890", "x": 0.12345678901234567890123}',
    ]:
        async with served.client.post(url, data=fits) as response:
            assert response.status == 200, fits
        status, body = await served.get_json("/device/1?lane=status")
        assert status == 200 and orjson.dumps(body) == orjson.dumps(orjson.loads(fits))


async def test_a_body_its_content_encoding_cannot_decode_is_400(served: Served) -> None:
    headers = {"Content-Encoding": "deflate"}
    async with served.client.post(
        served.url("/device/1?lane=status"), data=b"xx", headers=headers
    ) as response:
        assert response.status == 400
        assert "the body cannot be read" in (await response.json())["error"]
    assert not served.plane.is_active("/device/1")  # untouched: not even made


async def test_a_gzip_body_cut_short_is_400_saying_it_was_decoded(serve: ServeFactory) -> None:
    """aiohttp hands over what a truncated gzip stream decoded to, with no error: the 400
    says the body was decoded, or "not valid JSON" would point at the wrong problem."""
    whole = gzip.compress(b'{"temp": 71.5, "tower": "t1", "ts": 1}')
    async with serve() as served:
        url = served.url("/device/1?lane=reading")
        headers = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
        async with served.client.post(url, data=whole[:-12], headers=headers) as response:
            assert response.status == 400
            error = (await response.json())["error"]
        assert error.startswith("the body is not valid JSON (decoded as gzip: was it cut short?)")
        async with served.client.post(url, data=whole, headers=headers) as response:
            assert response.status == 200, await response.text()


async def test_a_corrupt_gzip_body_is_400_and_one_warning_line_without_a_traceback(
    serve: ServeFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """(The 400 was right, but aiohttp, draining the body after it, failed on it again
    and logged "Unhandled exception" at ERROR with three chained tracebacks.)"""
    caplog.set_level(logging.DEBUG, logger="aiohttp")
    gzip = {"Content-Encoding": "gzip"}

    async def corrupt_chunks() -> Any:  # no Content-Length: read as it arrives
        yield b"still not gzip"

    def server_lines() -> list[logging.LogRecord]:
        lines = [r for r in caplog.records if r.name == "aiohttp.server"]
        caplog.clear()
        return lines

    async with serve() as served:
        url = served.url("/device/1?lane=status")
        for body in (b"not gzip at all", corrupt_chunks()):
            async with served.client.post(url, data=body, headers=gzip) as response:
                assert response.status == 400 and response.headers["Connection"] == "close"
                assert (await response.json())["error"] == (
                    "the body cannot be read: Can not decode content-encoding: gzip "
                    "(Error -3 while decompressing data: incorrect header check)"
                )
        assert not served.plane.is_active("/device/1")  # untouched: not even made
    lines = server_lines()  # (the server stopped: every connection ended)
    # (The second, held back by the rate limit, is told as the server stops.)
    assert [r.levelname for r in lines] == ["WARNING"] * 2, [r.getMessage() for r in lines]
    assert all(r.exc_info is None for r in lines)
    assert [r.getMessage() for r in lines] == 2 * [
        "a request body could not be read, its connection closed: Can not decode "
        "content-encoding: gzip (Error -3 while decompressing data: incorrect header check)"
    ]

    async with serve() as served:  # a handler that never reads the body: the same line
        url = served.url("/device/1?lane=status")
        served.plane.agent("/device/1")
        async with served.client.get(url, data=b"not gzip", headers=gzip) as response:
            assert response.status == 200
    lines = server_lines()
    assert [r.levelname for r in lines] == ["WARNING"], [r.getMessage() for r in lines]
    assert "a request body could not be read" in lines[0].getMessage()


@pytest.mark.parametrize(
    ("method", "path", "status", "body_arrives"),
    [
        ("GET", "/device/1?lane=status", 200, "with the headers"),  # never read
        ("GET", "/device/1?lane=status", 200, "after the answer"),  # not even received
        ("POST", "/nowhere/1?lane=status", 404, "with the headers"),  # refused unread
        ("POST", "/nowhere/1?lane=status", 404, "after the answer"),
        ("POST", "/device/1?lane=status", 400, "with the headers"),  # read, and it failed
    ],
)
async def test_an_answer_whose_corrupt_gzip_body_ends_the_connection_says_so(
    served: Served, method: str, path: str, status: int, body_arrives: str
) -> None:
    """A keep-alive client sends its next request on the same connection unless told
    otherwise. aiohttp closes a connection whose body does not decode (it cannot skip
    the rest), so the answer must say ``Connection: close``; it said nothing when the
    handler had not read the body, and the next request met a closed connection."""
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
        assert answer[0] == status
        assert answer[1].get("connection") == "close", answer
        assert await asyncio.wait_for(reader.read(), 5) == b""  # and the server closed it
    finally:
        writer.close()
    assert await served.get_json("/device/1?lane=status") == (200, None)


async def test_an_unread_body_that_decodes_or_is_not_coded_keeps_the_connection(
    served: Served,
) -> None:
    """Only a body that cannot be skipped closes: a gzip body received and decoded
    whole, or a plain one, leaves the connection open for the next request."""
    served.plane.agent("/device/1")
    reader, writer = await asyncio.open_connection("127.0.0.1", served.server.port)
    try:
        for coding, body in (("gzip", gzip.compress(b"ignored")), (None, b"ignored")):
            writer.write(request_head("GET", "/device/1?lane=status", body, coding) + body)
            status, headers = await answer_of(reader)
            assert (status, headers.get("connection")) == (200, None), coding
    finally:
        writer.close()


async def test_a_body_over_the_limit_is_413(serve: ServeFactory) -> None:
    async with serve(max_body_size=1024) as served:
        big = {"pad": "x" * 2000}
        status, body = await served.post_json("/device/1?lane=status", big)
        assert status == 413 and "1024" in body["error"]

        async def chunks() -> Any:  # no Content-Length: the limit holds while reading
            for _ in range(4):
                yield b'"' + b"y" * 500 + b'"'

        async with served.client.post(served.url("/device/1?lane=status"), data=chunks()) as resp:
            assert resp.status == 413
        assert await served.post_json("/device/1?lane=status", {"small": 1}) == (200, {"ok": True})


async def test_a_body_that_never_arrives_is_408_and_ends_the_connection(
    serve: ServeFactory,
) -> None:
    """A POST whose body stopped coming held its connection, its handler and what came
    of the body (up to the 1 MiB limit) for good: no timer of aiohttp's runs while a
    handler reads. A hundred such requests held a hundred handlers and 100 MB."""
    async with serve(heartbeat_interval=0.1) as served:
        reader, writer = await asyncio.open_connection("127.0.0.1", served.server.port)
        writer.write(
            b"POST /device/1?lane=status HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n[1,"
        )  # and the rest never comes
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
        body = await asyncio.wait_for(reader.readexactly(length), 5)
        writer.close()
        assert head.startswith(b"HTTP/1.1 408 "), head
        assert b"Connection: close" in head
        assert "not received" in orjson.loads(body)["error"]
        assert not served.plane.is_active("/device/1")  # nothing was applied
        assert await served.post_json("/device/1?lane=status", 1) == (200, {"ok": True})
