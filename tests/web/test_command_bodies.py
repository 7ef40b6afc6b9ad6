"""A command's body over HTTP: what is not JSON, or could not be served back, or is too
large, or never comes, is a clear 4xx, one log line at most, and the server stays up
(coded bodies: tests/web/test_body_coding.py; the other lane tests:
tests/web/test_lanes.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from tests.web.harness import Served, ServeFactory


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
